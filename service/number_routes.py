"""``POST /models/{name}/number``: read a number (2 to 12 digits in one row) from one photo.

Contract (the page and the CLI rely on it): the same uploads as ``/predict`` (multipart field
``file``, the raw bytes, or JSON ``image_base64`` / ``image_url``), for models whose manifest
preprocessing is ``mnist_digit`` (any other model: 404, the detail says the route is for digit
models). The image is decoded at full size (EXIF orientation applied), cut into digits
(``service.preprocessing.number``), every digit (and every alternative reading of touching
ink) classified in ONE ONNX Runtime call, and the answer is

    {"model", "model_version", "number": "2024", "confidence": <product of the digits'>,
     "digits": [{"prediction", "class_index", "confidence", "box": [left, top, right, bottom],
                 "top_k": [...]}, ...]}

with boxes in pixels of the upright image, left to right. No digit found: 422.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Request
from pydantic import Field

from .dependencies import LimitsDep, RegistryDep, SettingsDep
from .errors import ModelNotFound, ServiceError
from .inference import Ranked, run, top_k
from .json_bodies import image_from_json, is_json
from .manifest import MnistDigitPreprocessing
from .prediction import admit, decode, find_model, in_worker, read_upload
from .preprocessing import number as number_reading
from .registry import LoadedModel
from .routes import ERRORS, IMAGE_BODY, ModelName, TopK
from .schemas import ClassProbability, WireModel

router = APIRouter()

NO_DIGIT = "no digit was found in the image (blank, or no ink darker or lighter than the paper)"


class NoDigit(ServiceError):
    """422: the image decoded, but holds no digit to read."""

    status_code = 422


class DigitReading(WireModel):
    prediction: str = Field(description="The digit's most probable class label.", examples=["2"])
    class_index: int = Field(ge=0, examples=[2])
    confidence: float = Field(ge=0.0, le=1.0, examples=[0.99])
    box: list[int] = Field(
        min_length=4,
        max_length=4,
        description="[left, top, right, bottom] of the digit's ink, pixels of the upright image "
        "(right and bottom exclusive).",
        examples=[[112, 80, 190, 205]],
    )
    top_k: list[ClassProbability]


class NumberReading(WireModel):
    """The number read from the image, and each of its digits, left to right."""

    model: str = Field(examples=["mnist"])
    model_version: str = Field(examples=["1.0.0"])
    number: str = Field(description="The digits, left to right.", examples=["2024"])
    confidence: float = Field(
        ge=0.0, le=1.0, description="Product of the digits' confidences.", examples=[0.96]
    )
    digits: list[DigitReading]


@dataclass(frozen=True)
class _Read:
    digits: list[tuple[tuple[int, int, int, int], list[Ranked]]]
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


def read_number_upload(model: LoadedModel, data: bytes, max_pixels: int, k: int) -> _Read:
    """Decode, cut into digits, classify in one batch, rank (blocking: run via ``in_worker``).

    Raises:
        NoDigit (422): no digit in the image. Decoding errors as ``decode``.
    """
    start = time.perf_counter()
    spec = model.manifest.preprocessing
    assert isinstance(spec, MnistDigitPreprocessing)
    image = decode(data, max_pixels)
    segments = number_reading.segment_number(image, spec)

    def classify(batch: np.ndarray) -> np.ndarray:
        if model.manifest.input.layout == "NCHW":
            batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return run(model, batch.astype(np.float32, copy=False))

    read = number_reading.read_number(segments, classify)
    if not read:
        raise NoDigit(NO_DIGIT)
    labels = model.manifest.labels
    digits = [(crop.box, top_k(probabilities, labels, k)) for crop, probabilities in read]
    return _Read(digits, time.perf_counter() - start)


@router.post(
    "/models/{name}/number",
    response_model=NumberReading,
    responses={
        **ERRORS,
        404: {**ERRORS[404], "description": "Unknown model, or not a digit model (mnist_digit)."},
        422: {**ERRORS[422], "description": "No digit found in the image; invalid parameter or form field."},
    },
    openapi_extra=IMAGE_BODY,
    tags=["predict"],
)
async def read_number(
    name: ModelName,
    request: Request,
    top_k: TopK,
    settings: SettingsDep,
    registry: RegistryDep,
    limits: LimitsDep,
) -> NumberReading:
    """Read a number written in one row (2 to 12 digits) with digit model `name`."""
    model = find_model(request, registry, name)
    refusal = not_a_digit_model(model)
    if refusal:
        raise ModelNotFound(refusal)
    async with admit(limits.admission):
        if is_json(request):
            data, body_k = await image_from_json(request, settings)
        else:
            data, body_k = await read_upload(request), None
        read = await in_worker(
            limits.workers, read_number_upload, model, data, settings.max_image_pixels, body_k or top_k
        )
    request.state.inference_seconds = read.seconds
    return number_answer(model, read)


def number_answer(model: LoadedModel, read: _Read) -> NumberReading:
    """The JSON body for the digits ``read_number_upload`` read (also the CLI's record)."""
    digits = [
        DigitReading(
            prediction=ranked[0].label,
            class_index=ranked[0].class_index,
            confidence=ranked[0].probability,
            box=list(box),
            top_k=[
                ClassProbability(label=r.label, class_index=r.class_index, probability=r.probability)
                for r in ranked
            ],
        )
        for box, ranked in read.digits
    ]
    return NumberReading(
        model=model.name,
        model_version=model.manifest.version,
        number="".join(d.prediction for d in digits),
        confidence=math.prod(d.confidence for d in digits),
        digits=digits,
    )
