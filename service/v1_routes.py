"""KServe V1 / TF-Serving REST routes: ``GET /v1/models/{name}``, ``POST /v1/models/{name}:predict``.

The codec is ``service.protocols.tfserving``; images take the same steps as an upload
(``service.batching``). Errors are ``{"error": "..."}`` (``service.error_responses.error_response``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from .batching import classify_files_in_worker, first_error
from .dependencies import LimitsDep, RegistryDep, SettingsDep
from .errors import HTTPError, InvalidParameters
from .inference import top_k as rank_row
from .prediction import admit, find_model
from .protocols.tfserving import parse_instances
from .registry import LoadedModel
from .routes import ModelName, TopK
from .schemas import ClassProbability, WireModel

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


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request or image.",
        404: "Unknown model.",
        413: "Too many instances, body over the byte limit or image over the pixel limit.",
        415: "An instance is not an image, or an unsupported format.",
        422: "Invalid parameter.",
        503: "Model not loaded, or the server is busy (Retry-After).",
    }
    return {s: {"model": ErrorObject, "description": descriptions[s]} for s in statuses}


PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["instances"],
                    "properties": {
                        "instances": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["image_bytes"],
                                "properties": {
                                    "image_bytes": {
                                        "type": "object",
                                        "required": ["b64"],
                                        "properties": {
                                            "b64": {"type": "string", "contentEncoding": "base64"}
                                        },
                                    }
                                },
                            },
                        },
                        "parameters": {
                            "type": "object",
                            "properties": {"top_k": {"type": "integer", "minimum": 1}},
                        },
                    },
                },
                "example": {"instances": [{"image_bytes": {"b64": "iVBORw0KGgoAAAANSUhEUgAA..."}}]},
            }
        },
    }
}


@router.get("/v1/models/{name}", response_model=V1ModelStatus, responses=_errors(404, 422, 503))
async def v1_model_status(name: ModelName, request: Request, registry: RegistryDep) -> Any:
    """Whether model `name` is ready: `{"name", "ready"}`; 503 with `ready: false` when not loaded."""
    found = registry.get(name)
    if found is not None and not isinstance(found, LoadedModel):
        request.state.model = name
        return JSONResponse(
            {"name": name, "ready": False, "error": f"model {name!r} is not available: {found.reason}"},
            status_code=503,
        )
    find_model(request, registry, name)  # 404 for an unknown name
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
    limits: LimitsDep,
) -> V1PredictResponse:
    """Classify `instances` (base64 images); `predictions` in the same order. One bad instance
    fails the request (TF-Serving semantics); `parameters.top_k` overrides `?top_k`."""
    model = find_model(request, registry, name)
    async with admit(limits.admission):
        body = await request.body()
        files, body_k = parse_instances(body, settings.max_batch_images)
        k = body_k or top_k
        if k > settings.max_top_k:
            raise InvalidParameters(
                [{"loc": ["body", "parameters", "top_k"], "msg": f"Input should be <= {settings.max_top_k}"}]
            )
        outcomes = await classify_files_in_worker(request, model, files, settings, limits)
    failed = first_error(outcomes)
    if failed is not None:
        index, error = failed
        raise HTTPError(error.status_code, f"instance {index}: {error.detail}")
    predictions = []
    for outcome in outcomes:
        assert outcome.probabilities is not None
        ranked = rank_row(outcome.probabilities, model.manifest.labels, k)
        predictions.append(
            V1Prediction(
                label=ranked[0].label,
                class_index=ranked[0].class_index,
                probability=ranked[0].probability,
                top_k=[
                    ClassProbability(label=r.label, class_index=r.class_index, probability=r.probability)
                    for r in ranked
                ],
            )
        )
    return V1PredictResponse(predictions=predictions)
