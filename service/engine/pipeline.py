"""The classification engine: one ``preprocess -> predict -> postprocess`` chain, no web framework.

In the shape of KServe's ``Model`` (``kserve/model.py``: ``preprocess``, ``predict`` and
``postprocess``, each stage timed, https://github.com/kserve/kserve/blob/master/python/kserve/kserve/model.py).
Every way in uses it: the HTTP routes of each protocol (through ``service.engine.admission``),
the in-process CLI, the dynamic batcher and the Lambda warm-up.

One request's input is either

- ``EncodedImages``: image files (JPEG, PNG, HEIC, ...), each decoded and preprocessed the way
  the model's manifest says, or
- ``Tensor``: float32 ``(N, *sample_shape)`` already preprocessed (Open Inference Protocol FP32
  input),

and its output is one ``Outcome`` per image, in order: the class probabilities and, when ``k``
is given, the ``k`` most probable classes; or the client error (4xx ``ServiceError``) that made
that image unusable. One bad image never fails the others; a server fault (5xx) propagates.

Stages (blocking, thread-safe; each timed as a stage of the current request,
``service.observability.stages``):

- ``preprocess(model, inputs, max_pixels) -> Prepared``: decode + preprocess each image;
- ``predict(model, batch, chunk) -> np.ndarray``: float32 (N, *sample_shape) in, class
  probabilities float64 (N, classes) out, one ONNX Runtime call per ``chunk`` images;
- ``postprocess(model, prepared, probabilities, k) -> list[Outcome]``: top-k per good image,
  errors in their places.

``classify`` chains the three and returns the outcomes with the worker seconds they took.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service.engine.inference import Ranked, run, top_k
from service.engine.registry import LoadedModel
from service.errors import BadImage, BadRequest, ModelMisconfigured, ServiceError
from service.images import preprocessing
from service.images.decode import decode_image
from service.observability.stages import DECODE, INFERENCE, PREPROCESS, stage

__all__ = [
    "Classified",
    "EncodedImages",
    "Outcome",
    "Prepared",
    "Ranked",
    "Tensor",
    "classify",
    "decode",
    "postprocess",
    "predict",
    "prepare",
    "preprocess",
]


@dataclass(frozen=True)
class EncodedImages:
    """Image files as uploaded, one model input each."""

    files: Sequence[bytes]

    def __len__(self) -> int:
        return len(self.files)


@dataclass(frozen=True)
class Tensor:
    """An already preprocessed batch: float32 ``(N, *sample_shape)``."""

    array: np.ndarray

    def __len__(self) -> int:
        return len(self.array)


Inputs = EncodedImages | Tensor


@dataclass(frozen=True)
class Outcome:
    """One image's result: its probabilities float64 (classes,) and its top-k (when asked
    for), or the client error that made it unusable."""

    probabilities: np.ndarray | None = None
    ranking: list[Ranked] | None = None
    error: ServiceError | None = None


@dataclass(frozen=True)
class Classified:
    """Each image's outcome, in input order, and the worker seconds spent on the request's
    stages (its decode + preprocess, and its ONNX Runtime call; with dynamic batching the call
    it shared with its batch neighbours)."""

    outcomes: list[Outcome]
    seconds: float

    def first_error(self) -> tuple[int, ServiceError] | None:
        """(index, error) of the first image that failed, for protocols where one failure
        fails the request (KServe V1, Open Inference Protocol)."""
        return next(((i, o.error) for i, o in enumerate(self.outcomes) if o.error is not None), None)

    def probabilities(self) -> np.ndarray:
        """float64 (N, classes): every image's probabilities; only when none failed."""
        rows = [o.probabilities for o in self.outcomes]
        if any(r is None for r in rows):
            raise ValueError("an image failed: there is no probabilities row for it")
        return np.stack(rows)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Prepared:
    """``preprocess``'s result: the good images' tensors, float32 (k, *sample_shape) each, in
    input order, and per input either the index of its row in ``batch`` or its error."""

    tensors: tuple[np.ndarray, ...]
    rows: list[int | ServiceError]
    from_tensor: bool = False
    sample_shape: tuple[int, ...] = ()

    @property
    def images(self) -> int:
        return sum(len(t) for t in self.tensors)

    @property
    def batch(self) -> np.ndarray:
        """float32 (G, *sample_shape): the tensors stacked; one tensor is returned as it is
        (no copy: a 224x224x3 image is 600 KB that a copy would page in afresh)."""
        if len(self.tensors) == 1:
            return self.tensors[0]
        if not self.tensors:
            return np.zeros((0, *self.sample_shape), np.float32)
        return np.concatenate(self.tensors)


# --- preprocess -----------------------------------------------------------------------------


def decode(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """The image file as a Pillow image (``service.images.decode.decode_image``); with
    ``min_side``, a JPEG may decode at a reduced DCT scale, never below it.

    Raises: ``BadImage`` (400), ``UnsupportedImage`` (415), ``PayloadTooLarge`` (413).
    """
    with stage(DECODE):
        return decode_image(data, max_pixels, min_side=min_side)


def image_tensor(model: LoadedModel, image: Image.Image) -> np.ndarray:
    """float32 (1, *sample_shape): the model's input for one decoded image, e.g. (1, 28, 28, 1)
    NHWC or (1, 3, 224, 224) NCHW.

    Raises:
        BadImage (400): pixels that decoded but cannot be converted.
        ModelMisconfigured (500): the preprocessing made another shape than the graph takes.
    """
    try:
        with stage(PREPROCESS):
            batch = preprocessing.preprocess(image, model.manifest)
    except (ValueError, OSError) as exc:
        raise BadImage(f"image could not be converted for {model.name}: {exc}") from None
    if batch.shape[1:] != model.contract.sample_shape:
        raise ModelMisconfigured(
            f"model {model.name!r} is misconfigured: its preprocessing made {batch.shape[1:]}, "
            f"the graph takes {model.contract.sample_shape}"
        )
    return batch


def prepare(model: LoadedModel, data: bytes, max_pixels: int) -> np.ndarray:
    """``decode`` then ``image_tensor``: float32 (1, *sample_shape) for one image file."""
    # Decode only what the model's preprocessing needs (a 12 MP JPEG -> ~1 MP for 224x224).
    return image_tensor(model, decode(data, max_pixels, preprocessing.decode_min_side(model.manifest)))


def preprocess(model: LoadedModel, inputs: Inputs, max_pixels: int) -> Prepared:
    """Each input as the model's tensor; a file's client error (4xx) stays with that file.

    Raises:
        ServiceError: a server fault (5xx) for any file: it is not the file's fault.
    """
    if isinstance(inputs, Tensor):
        return Prepared((inputs.array,), list(range(len(inputs))), from_tensor=True)
    tensors: list[np.ndarray] = []
    rows: list[int | ServiceError] = []
    for data in inputs.files:
        try:
            tensors.append(prepare(model, data, max_pixels))
        except ServiceError as exc:
            if exc.status_code >= 500:
                raise
            rows.append(exc)
        else:
            rows.append(len(tensors) - 1)
    return Prepared(tuple(tensors), rows, sample_shape=model.contract.sample_shape)


# --- predict --------------------------------------------------------------------------------


def predict(model: LoadedModel, batch: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Class probabilities float64 (N, classes) for float32 ``batch`` (N, *sample_shape).

    One ONNX Runtime call per ``chunk`` images (all at once when None); ``settings.batch_chunk``
    is chosen by ``benchmarks/http/batch_http.py --chunks``.
    """
    if len(batch) == 0:
        return np.zeros((0, len(model.manifest.labels)))
    step = max(chunk or len(batch), 1)
    with stage(INFERENCE, batch_size=len(batch)):
        parts = [run(model, batch[i : i + step]) for i in range(0, len(batch), step)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# --- postprocess ----------------------------------------------------------------------------


def postprocess(
    model: LoadedModel, prepared: Prepared, probabilities: np.ndarray, k: int | None
) -> list[Outcome]:
    """One ``Outcome`` per input, in order: its probabilities row and top-``k`` (None: no
    ranking), or its error.

    Raises:
        BadRequest (400): a ``Tensor`` input whose scores are not finite (finite but extreme
            values, say 1e38, overflow inside the model: the tensor's fault, not the server's).
    """
    if prepared.from_tensor and not np.isfinite(probabilities).all():
        raise BadRequest(
            f"the model's scores for input {model.manifest.input.name!r} are not finite; "
            "the tensor is outside what its preprocessing produces"
        )
    labels = model.manifest.labels
    outcomes = []
    for row in prepared.rows:
        if isinstance(row, ServiceError):
            outcomes.append(Outcome(error=row))
        else:
            p = probabilities[row]
            outcomes.append(Outcome(probabilities=p, ranking=None if k is None else top_k(p, labels, k)))
    return outcomes


def classify(
    model: LoadedModel, inputs: Inputs, k: int | None, *, max_pixels: int, chunk: int | None = None
) -> Classified:
    """``preprocess -> predict -> postprocess`` for one request's inputs (blocking)."""
    start = time.perf_counter()
    prepared = preprocess(model, inputs, max_pixels)
    probabilities = predict(model, prepared.batch, chunk)
    outcomes = postprocess(model, prepared, probabilities, k)
    return Classified(outcomes, time.perf_counter() - start)
