"""``POST /models/{name}/predict/batch``: several photos in one multipart request.

Contract (the web page and CLI rely on it): multipart with the field ``files`` repeated, at
most ``EDGE_MAX_BATCH_IMAGES`` (default 32) files and ``EDGE_MAX_BODY_BYTES`` in all, else a
413 before any image is decoded. The answer lists the files in upload order: each either the
single-image prediction plus ``filename``, or ``{"filename", "error": {"status", "detail"}}``
for a file that cannot be used. One bad photo never fails the others; the good ones run as
one ONNX Runtime batch (``service.engine.pipeline``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from service.api.dependencies import AdmissionDep, RegistryDep, SettingsDep
from service.api.forms import read_form
from service.api.parameters import ERRORS, ModelName, TopK, record_work, served_model
from service.api.schemas import Prediction, WireModel
from service.engine.pipeline import EncodedImages
from service.errors import InvalidForm, PayloadTooLarge
from service.images.decode import ALLOWED_FORMATS

BATCH_FIELD = "files"

router = APIRouter()


class ItemError(WireModel):
    status: int = Field(description="The HTTP status this file alone would have got.", examples=[415])
    detail: str = Field(examples=["PDF is not a supported image format; send one of: JPEG, PNG, ..."])


class BatchItemPrediction(Prediction):
    filename: str | None = Field(description="The part's filename, as uploaded.", examples=["digit-7.png"])


class BatchItemError(WireModel):
    filename: str | None = Field(examples=["scan.pdf"])
    error: ItemError


class BatchPrediction(WireModel):
    """Per-file answers, in upload order."""

    model: str = Field(examples=["mnist"])
    model_version: str = Field(examples=["1.0.0"])
    predictions: list[BatchItemPrediction | BatchItemError]


BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            f"A multipart form with the field `{BATCH_FIELD}` repeated, one image file each "
            f"(`curl -F files=@a.png -F files=@b.jpg`). Formats: {', '.join(ALLOWED_FORMATS)}."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [BATCH_FIELD],
                    "properties": {
                        BATCH_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            }
        },
    }
}

BATCH_EXAMPLE = {
    "model": "mnist",
    "model_version": "1.0.0",
    "predictions": [
        {
            "filename": "seven.png",
            "model": "mnist",
            "model_version": "1.0.0",
            "prediction": "7",
            "class_index": 7,
            "confidence": 0.998,
            "top_k": [{"label": "7", "class_index": 7, "probability": 0.998}],
            "for_real_predictions": True,
        },
        {"filename": "notes.pdf", "error": {"status": 415, "detail": "PDF is not a supported image format"}},
    ],
}


@router.post(
    "/models/{name}/predict/batch",
    response_model=BatchPrediction,
    responses={
        **ERRORS,
        200: {"content": {"application/json": {"example": BATCH_EXAMPLE}}},
        413: {**ERRORS[413], "description": "More files than EDGE_MAX_BATCH_IMAGES, or body over the limit."},
        422: {**ERRORS[422], "description": f"Not multipart, or no `{BATCH_FIELD}` field."},
    },
    openapi_extra=BATCH_BODY,
    tags=["predict"],
)
async def predict_batch(
    name: ModelName,
    request: Request,
    top_k: TopK,
    settings: SettingsDep,
    registry: RegistryDep,
    admission: AdmissionDep,
) -> BatchPrediction:
    """Classify several images with model `name` in one request (one ONNX Runtime batch)."""
    model = served_model(request, registry, name)
    async with admission.admit():
        names, files = await _read_files(request, settings.max_batch_images)
        classified = await admission.classify(model, EncodedImages(files), top_k)
    record_work(request, classified)
    items: list[BatchItemPrediction | BatchItemError] = []
    for filename, outcome in zip(names, classified.outcomes, strict=True):
        if outcome.error is not None:
            error = ItemError(status=outcome.error.status_code, detail=str(outcome.error.detail))
            items.append(BatchItemError(filename=filename, error=error))
        else:
            assert outcome.ranking is not None
            prediction = Prediction.of(model, outcome.ranking)
            items.append(BatchItemPrediction(filename=filename, **prediction.model_dump()))
    return BatchPrediction(model=model.name, model_version=model.manifest.version, predictions=items)


async def _read_files(request: Request, max_files: int) -> tuple[list[str | None], list[bytes]]:
    """(filenames, contents) of the ``files`` parts, in order; 413 past ``max_files``."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidForm(
            f"send a multipart/form-data body with the field {BATCH_FIELD!r} repeated "
            f"(got {content_type.split(';')[0] or 'no content type'})"
        )
    try:
        # Starlette's parser stops at the first file past max_files: refused before any decoding.
        # In memory (service.api.forms): a batch of phone photos never goes through temporary files.
        form = await read_form(request, max_files=max_files, max_fields=16)
    except HTTPException as exc:
        if "Too many files" in str(exc.detail):
            raise PayloadTooLarge(
                f"more than {max_files} files in one request; limit is {max_files} (EDGE_MAX_BATCH_IMAGES)"
            ) from None
        raise
    try:
        parts = form.getlist(BATCH_FIELD)
        if not parts:
            fields = ", ".join(repr(k) for k in form) or "none"
            raise InvalidForm(f"multipart body has no field {BATCH_FIELD!r} (fields sent: {fields})")
        names: list[str | None] = []
        files: list[bytes] = []
        for index, part in enumerate(parts):
            if not isinstance(part, UploadFile):
                # The form itself is malformed (not one bad photo among good ones): refuse it.
                raise InvalidForm(f"part {index} of {BATCH_FIELD!r} is a text value, not a file")
            names.append(part.filename)
            files.append(await part.read())
        return names, files
    finally:
        await form.close()
