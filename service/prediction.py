"""The steps of a prediction, as functions every route that classifies images reuses.

One upload goes ``admit -> read_upload -> decode -> preprocess -> run -> rank -> respond``;
``predict_one`` chains them for the single-image routes. A batch route does the same per
image up to ``preprocess`` and then makes ONE ONNX Runtime call for all of them
(``classify_batch``). Protocol routes (KServe V2 / Triton, TF-Serving V1) that receive
tensors instead of files start at ``run``.

Event loop (async):
    ``admit(limiter)``: async context manager holding one admission token for the request;
        raises ``Overloaded`` (503, ``Retry-After: 1``) at once when none is free, before the
        body is read. Released on exit, whatever happens.
    ``read_upload(request) -> bytes``: the multipart field ``file`` (parsed in memory,
        ``service.forms``) or else the raw body.
        Raises ``InvalidForm`` (422) for a form without a file; ``PayloadTooLarge`` (413)
        comes from the body-size middleware; malformed multipart is Starlette's 400.
    ``in_worker(limiter, func, *args)``: run blocking ``func`` in a worker thread, at most
        ``limiter`` at once, so the event loop (``/health``) keeps answering.
    ``find_model(request, registry, name) -> LoadedModel``: raises ``ModelNotFound`` (404) or
        ``ModelUnavailable`` (503); records the name for the access log and metrics.

Worker thread (blocking, thread-safe):
    ``decode(data, max_pixels, min_side=None) -> PIL.Image.Image``: see ``service.imaging.decode_image``;
        ``BadImage`` (400), ``UnsupportedImage`` (415), ``PayloadTooLarge`` (413).
    ``preprocess(model, image) -> np.ndarray``: float32 ``(1, *model.contract.sample_shape)``,
        e.g. (1, 28, 28, 1) NHWC or (1, 3, 224, 224) NCHW. Pixels Pillow cannot convert raise
        ``BadImage`` (400); a tensor of another shape than the graph's is the server's fault,
        ``ModelMisconfigured`` (500).
    ``prepare(model, data, max_pixels) -> np.ndarray``: ``decode`` then ``preprocess``.
    ``run(model, batch) -> np.ndarray``: float32 (N, *sample_shape) in, class probabilities
        float64 (N, len(labels)) out, one ONNX Runtime call (``service.inference.run``).
    ``rank(model, probs, k) -> list[list[Ranked]]``: per row, the ``k`` most probable classes.
    ``classify_batch(model, tensors, k) -> list[list[Ranked]]``: stack (1, ...) tensors of
        several images into (N, ...), ``run`` once, ``rank`` each; per-image rankings in order.
    ``predict_upload(model, data, max_pixels, k) -> Timed``: one upload's ranking and the
        seconds spent decoding, preprocessing and running.

Response:
    ``respond(model, ranked) -> Prediction``: the JSON body of a single-image answer.

Every error is a ``service.errors.ServiceError``; ``error_response`` turns it into JSON.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio
import numpy as np
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request

from . import allocator, preprocessing
from .errors import BadImage, InvalidForm, ModelMisconfigured, ModelNotFound, ModelUnavailable, Overloaded
from .forms import in_memory_form
from .imaging import decode_image
from .inference import Ranked, run, top_k
from .registry import LoadedModel, ModelRegistry
from .schemas import ClassProbability, Prediction
from .stages import DECODE, INFERENCE, PREPROCESS, stage

if TYPE_CHECKING:
    from .dynamic_batching import DynamicBatcher

__all__ = [
    "UPLOAD_FIELD",
    "Ranked",
    "Timed",
    "admit",
    "classify_batch",
    "decode",
    "find_model",
    "in_worker",
    "predict_one",
    "predict_upload",
    "prepare",
    "preprocess",
    "rank",
    "read_upload",
    "respond",
    "run",
]

UPLOAD_FIELD = "file"
T = TypeVar("T")
# Requests in flight at once that count as a burst: after one drains, free heap pages go back
# to the OS (service.allocator.BurstRelease). Four is twice a 2-vCPU host's inference workers.
BURST_IN_FLIGHT = 4
_BURSTS = allocator.BurstRelease(BURST_IN_FLIGHT)


# --- event loop ----------------------------------------------------------------------------


@asynccontextmanager
async def admit(limiter: anyio.CapacityLimiter) -> AsyncIterator[None]:
    """Hold one of ``limiter``'s tokens for the block, or refuse at once with a 503.

    One token per request: anyio ties a token to the task holding it, and every request is
    its own task (uvicorn, Mangum); a batch request is admitted once, not per image. When the
    last request of a burst leaves, free heap pages go back to the OS (``BURST_IN_FLIGHT``).
    """
    try:
        limiter.acquire_nowait()
    except anyio.WouldBlock:
        raise Overloaded(
            f"server busy: {limiter.borrowed_tokens} predictions in progress; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    _BURSTS.entered(limiter.borrowed_tokens)
    try:
        yield
    finally:
        limiter.release()
        _BURSTS.left(limiter.borrowed_tokens)


async def read_upload(request: Request) -> bytes:
    """The uploaded file: multipart field ``file``, or else the raw request body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return await request.body()
    # Starlette turns multipart errors (too many files or fields, malformed) into 400.
    async with in_memory_form(request, max_files=1, max_fields=8) as form:
        upload = form.get(UPLOAD_FIELD)
        if upload is None:
            fields = ", ".join(repr(k) for k in form) or "none"
            raise InvalidForm(f"multipart body has no field {UPLOAD_FIELD!r} (fields sent: {fields})")
        if not isinstance(upload, UploadFile):
            raise InvalidForm(f"multipart field {UPLOAD_FIELD!r} must be a file, not a text value")
        return await upload.read()


async def in_worker(limiter: anyio.CapacityLimiter, func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` in a worker thread, at most ``limiter.total_tokens`` at once."""
    return await anyio.to_thread.run_sync(partial(func, *args), limiter=limiter)


def find_model(request: Request, registry: ModelRegistry, name: str) -> LoadedModel:
    """The served model ``name``.

    Raises:
        ModelNotFound: no model of that name (404); the detail lists the served ones.
        ModelUnavailable: known but not served (503); the detail gives the load-time reason.
    """
    found = registry.get(name)
    if found is None:
        known = ", ".join(sorted(registry.ready)) or "none"
        raise ModelNotFound(f"no model named {name!r}; models being served: {known}")
    # Only names the registry knows become a metrics label (bounded cardinality).
    request.state.model = name
    if not isinstance(found, LoadedModel):
        raise ModelUnavailable(f"model {name!r} is not available: {found.reason}")
    request.state.model_version = found.manifest.version
    return found


# --- worker thread -------------------------------------------------------------------------


def decode(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """The uploaded bytes as a Pillow image (``service.imaging.decode_image``); with
    ``min_side``, a JPEG may decode at a reduced DCT scale, never below it."""
    with stage(DECODE):
        return decode_image(data, max_pixels, min_side=min_side)


def preprocess(model: LoadedModel, image: Image.Image) -> np.ndarray:
    """float32 (1, *sample_shape): the model's input for one decoded image."""
    try:
        with stage(PREPROCESS):
            batch = preprocessing.preprocess(image, model.manifest)
    except (ValueError, OSError) as exc:  # pixel data that decoded but cannot be converted
        raise BadImage(f"image could not be converted for {model.name}: {exc}") from None
    if batch.shape[1:] != model.contract.sample_shape:
        raise ModelMisconfigured(
            f"model {model.name!r} is misconfigured: its preprocessing made {batch.shape[1:]}, "
            f"the graph takes {model.contract.sample_shape}"
        )
    return batch


def prepare(model: LoadedModel, data: bytes, max_pixels: int) -> np.ndarray:
    """``decode`` then ``preprocess``: float32 (1, *sample_shape) for one uploaded file."""
    # Decode only what the model's preprocessing needs (a 12 MP JPEG -> ~1 MP for 224x224).
    return preprocess(model, decode(data, max_pixels, preprocessing.decode_min_side(model.manifest)))


def rank(model: LoadedModel, probs: np.ndarray, k: int) -> list[list[Ranked]]:
    """The ``k`` most probable classes of each row of ``probs`` (N, classes), best first."""
    return [top_k(row, model.manifest.labels, k) for row in probs]


def classify_batch(model: LoadedModel, tensors: Sequence[np.ndarray], k: int) -> list[list[Ranked]]:
    """Rank several preprocessed images with one ONNX Runtime call.

    Args:
        tensors: each float32 (1, *sample_shape) as ``preprocess`` returns, at least one.

    Returns:
        One ranking per tensor, in order.
    """
    if not tensors:
        raise ValueError("classify_batch needs at least one image")
    with stage(INFERENCE, batch_size=len(tensors)):
        probs = run(model, np.concatenate(tensors, axis=0))
    return rank(model, probs, k)


@dataclass(frozen=True)
class Timed:
    """A ranking and the worker seconds spent on decode + preprocess + run + rank."""

    ranked: list[Ranked]
    seconds: float


def predict_upload(model: LoadedModel, data: bytes, max_pixels: int, k: int) -> Timed:
    """Decode, preprocess, run and rank one uploaded file (blocking; call it via ``in_worker``)."""
    start = time.perf_counter()
    (ranked,) = classify_batch(model, [prepare(model, data, max_pixels)], k)
    return Timed(ranked, time.perf_counter() - start)


# --- response ------------------------------------------------------------------------------


def respond(model: LoadedModel, ranked: list[Ranked]) -> Prediction:
    """The answer for one image: its best class, that class's probability and the top-k."""
    best = ranked[0]
    return Prediction(
        model=model.name,
        model_version=model.manifest.version,
        prediction=best.label,
        class_index=best.class_index,
        confidence=best.probability,
        top_k=[
            ClassProbability(label=r.label, class_index=r.class_index, probability=r.probability)
            for r in ranked
        ],
        for_real_predictions=model.manifest.for_real_predictions,
    )


async def predict_one(
    request: Request,
    model: LoadedModel,
    k: int,
    *,
    max_pixels: int,
    admission: anyio.CapacityLimiter,
    workers: anyio.CapacityLimiter,
    batcher: DynamicBatcher | None = None,
) -> Prediction:
    """The whole path for one uploaded image: admit, read, classify in a worker, respond.

    With a ``batcher`` (dynamic batching), the worker only prepares the image and the model
    runs in the batcher's next batch. Sets ``request.state.inference_seconds`` for the access
    log and metrics.
    """
    async with admit(admission):
        data = await read_upload(request)
        if batcher is None:
            timed = await in_worker(workers, predict_upload, model, data, max_pixels, k)
        else:
            from .dynamic_batching import classify_upload

            timed = await classify_upload(batcher, workers, data, max_pixels, k)
    request.state.inference_seconds = timed.seconds
    return respond(model, timed.ranked)
