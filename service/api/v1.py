"""KServe V1 / TF-Serving REST routes: ``GET /v1/models/{name}``, ``POST /v1/models/{name}:predict``.

The codec is ``service.api.protocols.tfserving``; images take the engine's chain as an upload does
(``service.engine.pipeline``). Errors are ``{"error": "..."}``
(``service.api.error_responses.error_response``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from service.api.dependencies import AdmissionDep, RegistryDep, SettingsDep
from service.api.openapi import schema_ref
from service.api.parameters import ModelName, TopK, check_top_k, error_docs, record_work, served_model
from service.api.protocols.tfserving import V1PredictRequest, parse_instances
from service.api.schemas import ClassProbability, WireModel
from service.engine.pipeline import EncodedImages
from service.errors import HTTPError, ModelUnavailable

router = APIRouter(tags=["KServe V1 / TF-Serving"])


class ErrorObject(WireModel):
    """The error body of the protocol routes (V1 and V2)."""

    error: str = Field(description="What was wrong.", examples=["no model named 'mnst'"])
    detail: Any = Field(None, description="The same message (the service's usual error field).")


class V1ModelStatus(WireModel):
    name: str = Field(examples=["mnist"])
    ready: bool


class V1Prediction(WireModel):
    label: str = Field(examples=["7"])
    class_index: int = Field(ge=0, examples=[7])
    probability: float = Field(ge=0.0, le=1.0, examples=[0.998])
    top_k: list[ClassProbability]


class V1PredictResponse(WireModel):
    predictions: list[V1Prediction]


ERROR_DESCRIPTIONS = {
    400: "Malformed request or image.",
    404: "Unknown model.",
    413: "Too many instances, body over the byte limit or image over the pixel limit.",
    415: "An instance is not an image, or an unsupported format.",
    422: "Invalid parameter.",
    503: "Model not loaded, or the server is busy (Retry-After).",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return error_docs(ErrorObject, ERROR_DESCRIPTIONS, *statuses)


PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": schema_ref(V1PredictRequest),
                "example": {"instances": [{"image_bytes": {"b64": "iVBORw0KGgoAAAANSUhEUgAA..."}}]},
            }
        },
    }
}


@router.get("/v1/models/{name}", response_model=V1ModelStatus, responses=_errors(404, 422, 503))
async def v1_model_status(name: ModelName, request: Request, registry: RegistryDep) -> Any:
    """Whether model `name` is ready: `{"name", "ready"}`; 503 with `ready: false` when not loaded."""
    try:
        served_model(request, registry, name)
    except ModelUnavailable as exc:
        return JSONResponse({"name": name, "ready": False, "error": exc.detail}, status_code=503)
    return V1ModelStatus(name=name, ready=True)


@router.post(
    "/v1/models/{name}:predict",
    response_model=V1PredictResponse,
    responses=_errors(400, 404, 413, 415, 422, 503),
    openapi_extra=PREDICT_BODY,
)
async def v1_predict(
    name: ModelName,
    request: Request,
    top_k: TopK,
    settings: SettingsDep,
    registry: RegistryDep,
    admission: AdmissionDep,
) -> V1PredictResponse:
    """Classify `instances` (base64 images); `predictions` in the same order. One bad instance
    fails the request (TF-Serving semantics); `parameters.top_k` overrides `?top_k`."""
    model = served_model(request, registry, name)
    async with admission.admit():
        files, body_k = parse_instances(await request.body(), settings.max_batch_images)
        k = (
            top_k
            if body_k is None
            else check_top_k(body_k, settings.max_top_k, ("body", "parameters", "top_k"))
        )
        classified = await admission.classify(model, EncodedImages(files), k)
    failed = classified.first_error()
    if failed is not None:
        index, error = failed
        raise HTTPError(error.status_code, f"instance {index}: {error.detail}")
    record_work(request, classified)
    predictions = []
    for outcome in classified.outcomes:
        assert outcome.ranking is not None
        best = outcome.ranking[0]
        predictions.append(
            V1Prediction(
                label=best.label,
                class_index=best.class_index,
                probability=best.probability,
                top_k=ClassProbability.ranking(outcome.ranking),
            )
        )
    return V1PredictResponse(predictions=predictions)
