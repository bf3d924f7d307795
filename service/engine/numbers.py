"""Read a number (2 to 12 digits in one row) from one photo with a digit model: the engine's
chain for ``POST /models/{name}/number`` and ``edge-infer predict --number``.

``preprocess`` here decodes the photo at full size (EXIF orientation applied) and cuts it into
digits, each normalised the MNIST way (``service.images.preprocessing.number``); ``predict``
classifies every digit, and every alternative reading of touching ink, in ONE ONNX Runtime
call; ``postprocess`` ranks each digit kept. No web framework.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from service.engine.inference import Ranked, top_k
from service.engine.pipeline import decode, predict
from service.engine.registry import LoadedModel
from service.errors import ModelNotFound, NoDigit
from service.images.preprocessing import number as number_reading
from service.manifest import MnistDigitPreprocessing

NO_DIGIT = "no digit was found in the image (blank, or no ink darker or lighter than the paper)"

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class NumberRead:
    """Each digit's box ``(left, top, right, bottom)`` in pixels of the upright image (right
    and bottom exclusive) and its top-k, left to right; the worker seconds it took."""

    digits: list[tuple[Box, list[Ranked]]]
    seconds: float


def not_a_digit_model(model: LoadedModel) -> str | None:
    """Why ``model`` cannot read numbers (its preprocessing is not ``mnist_digit``), or None."""
    kind = model.manifest.preprocessing
    if isinstance(kind, MnistDigitPreprocessing):
        return None
    return (
        f"/models/{{name}}/number is for digit models (manifest preprocessing mnist_digit); "
        f"model {model.name!r} uses {kind.kind!r} preprocessing: use /models/{model.name}/predict"
    )


def require_digit_model(model: LoadedModel) -> MnistDigitPreprocessing:
    """The model's digit preprocessing.

    Raises:
        ModelNotFound (404): the model is not a digit model; the detail says which route to use.
    """
    refusal = not_a_digit_model(model)
    if refusal:
        raise ModelNotFound(refusal)
    assert isinstance(model.manifest.preprocessing, MnistDigitPreprocessing)
    return model.manifest.preprocessing


def read_number(model: LoadedModel, data: bytes, max_pixels: int, k: int) -> NumberRead:
    """Decode, cut into digits, classify them in one batch, rank (blocking).

    Raises:
        ModelNotFound (404): not a digit model.
        NoDigit (422): no digit in the image. Decoding errors as ``pipeline.decode``.
    """
    start = time.perf_counter()
    spec = require_digit_model(model)
    segments = number_reading.segment_number(decode(data, max_pixels), spec)

    def classify(batch: np.ndarray) -> np.ndarray:
        # The segmenter makes NHWC (N, 28, 28, 1) crops; an NCHW graph takes them transposed.
        if model.manifest.input.layout == "NCHW":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return predict(model, batch.astype(np.float32, copy=False))

    read = number_reading.read_number(segments, classify)
    if not read:
        raise NoDigit(NO_DIGIT)
    labels = model.manifest.labels
    digits = [(crop.box, top_k(probabilities, labels, k)) for crop, probabilities in read]
    return NumberRead(digits, time.perf_counter() - start)
