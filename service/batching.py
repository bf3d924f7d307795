"""Several images in one request: prepare each on its own, run the good ones as one batch.

Used by the batch route (``POST /models/{name}/predict/batch``), the V1 ``:predict`` route and
the V2 ``infer`` route. Each file goes through the same ``prediction.prepare`` as a single
upload (decode, limits, preprocessing); a file that fails keeps its error and does not stop the
others. The prepared tensors then go to ONNX Runtime in chunks of ``chunk`` images, one call
per chunk (``settings.batch_chunk``; ``benchmarks/batch_http.py --chunks`` measures which size
is fastest per image on the machine at hand). With dynamic batching (``service.dynamic_batching``)
the files are prepared in parallel and join the model's queue as one unit instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import anyio
import numpy as np
from starlette.requests import Request

from .config import Settings
from .dependencies import Limits
from .errors import ServiceError
from .inference import run
from .prediction import in_worker, prepare
from .registry import LoadedModel
from .stages import INFERENCE, stage

if TYPE_CHECKING:
    from .dynamic_batching import DynamicBatcher

T = TypeVar("T")


@dataclass(frozen=True)
class FileOutcome:
    """One file's result: its probabilities row, or the error that made it unusable."""

    probabilities: np.ndarray | None = None  # float64 (classes,)
    error: ServiceError | None = None


def run_chunked(model: LoadedModel, batch: np.ndarray, chunk: int) -> np.ndarray:
    """Class probabilities float64 (N, classes) for float32 ``batch`` (N, *sample_shape).

    One ONNX Runtime call per ``chunk`` images (blocking; call it in a worker thread).
    """
    if len(batch) == 0:
        return np.zeros((0, len(model.manifest.labels)))
    with stage(INFERENCE, batch_size=len(batch)):
        parts = [run(model, batch[i : i + chunk]) for i in range(0, len(batch), max(chunk, 1))]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def classify_files(
    model: LoadedModel, files: Sequence[bytes], max_pixels: int, chunk: int
) -> list[FileOutcome]:
    """Each file's probabilities or client error, in order; the good ones run batched.

    Errors of the request (4xx ``ServiceError``: bad, unsupported or oversized image) are
    kept per file. Server faults (5xx) propagate: they are not the file's fault.
    """
    tensors: list[np.ndarray] = []
    outcomes: list[FileOutcome | None] = []
    for data in files:
        try:
            tensors.append(prepare(model, data, max_pixels))
            outcomes.append(None)
        except ServiceError as exc:
            if exc.status_code >= 500:
                raise
            outcomes.append(FileOutcome(error=exc))
    if tensors:
        rows = iter(run_chunked(model, np.concatenate(tensors, axis=0), chunk))
        outcomes = [o if o is not None else FileOutcome(probabilities=next(rows)) for o in outcomes]
    return [o for o in outcomes if o is not None]


def first_error(outcomes: Sequence[FileOutcome]) -> tuple[int, ServiceError] | None:
    """(index, error) of the first file that failed, for protocols where one failure fails all."""
    return next(((i, o.error) for i, o in enumerate(outcomes) if o.error is not None), None)


def timed(func: Callable[..., T], *args: object) -> tuple[T, float]:
    """``(func(*args), seconds it took)``: worker time for the access log and metrics."""
    start = time.perf_counter()
    result = func(*args)
    return result, time.perf_counter() - start


async def classify_files_in_worker(
    request: Request, model: LoadedModel, files: Sequence[bytes], settings: Settings, limits: Limits
) -> list[FileOutcome]:
    """``classify_files`` in a worker thread (at most ``limits.workers`` at once), recording the
    worker seconds on ``request.state`` for the access log and metrics.

    With dynamic batching the files are prepared in parallel worker threads and the good ones
    join the model's batcher queue together (``classify_files_batched``).
    """
    batcher = limits.batcher(model)
    if batcher is not None:
        outcomes, request.state.inference_seconds = await classify_files_batched(
            batcher, limits.workers, files, settings.max_image_pixels
        )
        return outcomes
    outcomes, request.state.inference_seconds = await in_worker(
        limits.workers, timed, classify_files, model, files, settings.max_image_pixels, settings.batch_chunk
    )
    return outcomes


async def classify_files_batched(
    batcher: DynamicBatcher, workers: anyio.CapacityLimiter, files: Sequence[bytes], max_pixels: int
) -> tuple[list[FileOutcome], float]:
    """(each file's outcome in order, worker seconds): ``classify_files`` through ``batcher``.

    Each file is prepared in its own worker thread (at most ``workers`` at once, shared with
    every other request), so one request's photos decode on every CPU. Client errors stay with
    their file; a server fault (5xx) propagates.
    """
    model = batcher.model
    results: list[np.ndarray | ServiceError | None] = [None] * len(files)
    prepare_seconds = 0.0

    async def prepare_one(index: int, data: bytes) -> None:
        nonlocal prepare_seconds
        try:
            tensor, seconds = await anyio.to_thread.run_sync(
                timed, prepare, model, data, max_pixels, limiter=workers
            )
        except ServiceError as exc:  # kept, not raised: a task group would wrap it in a group
            results[index] = exc
        else:
            results[index] = tensor
            prepare_seconds += seconds

    with batcher.preparing():
        async with anyio.create_task_group() as group:
            for index, data in enumerate(files):
                group.start_soon(prepare_one, index, data)
    fault = next((r for r in results if isinstance(r, ServiceError) and r.status_code >= 500), None)
    if fault is not None:
        raise fault
    tensors = [r for r in results if isinstance(r, np.ndarray)]
    run_seconds = 0.0
    rows: Iterator[np.ndarray] = iter(())
    if tensors:
        batched = await batcher.infer(np.concatenate(tensors, axis=0))
        batched.record_stage()
        rows, run_seconds = iter(batched.probabilities), batched.run_seconds
    outcomes = [
        FileOutcome(error=r) if isinstance(r, ServiceError) else FileOutcome(probabilities=next(rows))
        for r in results
    ]
    return outcomes, prepare_seconds + run_seconds
