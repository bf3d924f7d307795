"""``POST /models/{name}/number``: read a number (2 to 12 digits in one row) from one photo.

Contract (the page and the CLI rely on it): the same uploads as ``/predict`` (multipart field
``file``, the raw bytes, or JSON ``image_base64`` / ``image_url``), for models whose manifest
preprocessing is ``mnist_digit`` (any other model: 404, the detail says the route is for digit
models). The image is decoded at full size (EXIF orientation applied), cut into digits
(``service.engine.numbers``, ``service.images.preprocessing.number``), every digit (and every
alternative reading of touching ink) classified in ONE ONNX Runtime call, and the answer is

    {"model", "model_version", "number": "2024", "confidence": <product of the digits'>,
     "digits": [{"prediction", "class_index", "confidence", "box": [left, top, right, bottom],
                 "top_k": [...]}, ...]}

with boxes in pixels of the upright image, left to right. No digit found: 422.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.dependencies import AdmissionDep, RegistryDep, SettingsDep
from service.api.parameters import ERRORS, ModelName, TopK, check_top_k, record_work, served_model
from service.api.schemas import NumberReading
from service.api.uploads import IMAGE_BODY, read_image
from service.engine.numbers import read_number as read_digits
from service.engine.numbers import require_digit_model

router = APIRouter()


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
    admission: AdmissionDep,
) -> NumberReading:
    """Read a number written in one row (2 to 12 digits) with digit model `name`."""
    model = served_model(request, registry, name)
    require_digit_model(model)
    async with admission.admit():
        data, body_k = await read_image(request, settings)
        k = top_k if body_k is None else check_top_k(body_k, settings.max_top_k, ("body", "top_k"))
        read = await admission.in_worker(read_digits, model, data, settings.max_image_pixels, k)
    record_work(request, read.seconds)
    return NumberReading.of(model, read.digits)
