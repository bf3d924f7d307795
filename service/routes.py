"""HTTP routes: health, model metadata, and prediction, as module-level handlers.

Handlers get the settings, registry, metrics and limits through the dependencies of
``service.dependencies``; the steps of a prediction are in ``service.prediction``.
``open_router`` (``/health``) and ``metrics_router`` (``/metrics``, included only when metrics
are enabled) never ask for an API key; ``api_router`` does when keys are configured
(``create_app`` adds the key dependency when including it).
``document_settings`` writes the settings-dependent values (top-k bounds, default model) into
the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from .dependencies import LimitsDep, MetricsDep, RegistryDep, SettingsDep
from .imaging import ALLOWED_FORMATS
from .json_bodies import JSON_BODY_EXAMPLES, ImageJson, is_json, predict_json
from .prediction import UPLOAD_FIELD, find_model, predict_one
from .registry import ModelRegistry
from .schemas import (
    ErrorResponse,
    Health,
    InputInfo,
    ModelInfo,
    ModelList,
    ModelSummary,
    Prediction,
    UnavailableInfo,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Empty, truncated or corrupt image; bad JSON body; image URL refused or disabled.",
    },
    404: {"model": ErrorResponse, "description": "Unknown model."},
    413: {"model": ErrorResponse, "description": "Body over the byte limit or image over the pixel limit."},
    415: {"model": ErrorResponse, "description": "Not an image, or an unsupported format."},
    422: {"model": ErrorResponse, "description": "Invalid parameter or form field."},
    502: {
        "model": ErrorResponse,
        "description": "`image_url`: the image host failed or redirected too often.",
    },
    504: {"model": ErrorResponse, "description": "`image_url`: the image host did not answer in time."},
    503: {
        "model": ErrorResponse,
        "description": "Model found but not loaded (see /health), or the server is busy (Retry-After).",
    },
}
UNAUTHORIZED = {"model": ErrorResponse, "description": "Missing or invalid API key."}

IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "The image: a multipart form with the file in field `file` (`curl -F file=@digit.png`), "
            "the raw bytes as the body, or a JSON object with `image_base64` or `image_url` "
            f"(unknown fields ignored). Formats: {', '.join(ALLOWED_FORMATS)}."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": ImageJson.model_json_schema(), "examples": JSON_BODY_EXAMPLES},
        },
    }
}

TOP_K_HELP = "How many classes to return, most probable first."
ModelName = Annotated[str, Path(max_length=64, description="A model name from `GET /models`.")]


async def top_k_param(
    settings: SettingsDep, top_k: Annotated[int | None, Query(ge=1, description=TOP_K_HELP)] = None
) -> int:
    """The ``top_k`` query parameter: ``settings.default_top_k`` when absent, at most
    ``settings.max_top_k`` (a 422 in FastAPI's own validation format otherwise)."""
    if top_k is None:
        return settings.default_top_k
    if top_k > settings.max_top_k:
        limit = settings.max_top_k
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("query", "top_k"),
                    "msg": f"Input should be less than or equal to {limit}",
                    "input": str(top_k),
                    "ctx": {"le": limit},
                }
            ]
        )
    return top_k


TopK = Annotated[int, Depends(top_k_param)]

open_router = APIRouter()
metrics_router = APIRouter()  # open too; included only when metrics are enabled
api_router = APIRouter()


@open_router.get("/health", response_model=Health, tags=["health"])
async def health(registry: RegistryDep, settings: SettingsDep) -> Health:
    """Liveness and readiness: which models are serving and which are not, with why."""
    unavailable = [UnavailableInfo(name=u.name, reason=u.reason) for u in registry.unavailable.values()]
    if settings.default_model not in registry.ready and settings.default_model not in registry.unavailable:
        unavailable.append(UnavailableInfo(name=settings.default_model, reason=_default_missing(registry)))
    status = "ok" if registry.ready and not unavailable else "degraded"
    return Health(status=status, models=sorted(registry.ready), unavailable=unavailable)


def _default_missing(registry: ModelRegistry) -> str:
    served = ", ".join(sorted(registry.ready)) or "none"
    return f"EDGE_DEFAULT_MODEL names no model found in the model directory (served: {served})"


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, metrics: MetricsDep) -> Response:
    """Prometheus metrics (see ``service.metrics.Metrics`` for the names)."""
    assert metrics is not None  # the router is included only when metrics are enabled
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)


@api_router.get("/models", response_model=ModelList, tags=["models"])
async def list_models(registry: RegistryDep, settings: SettingsDep) -> ModelList:
    """Every model being served, and which one answers `POST /predict`."""
    summaries = [
        ModelSummary(
            name=m.name,
            version=m.manifest.version,
            description=m.manifest.description,
            num_classes=len(m.manifest.labels),
            for_real_predictions=m.manifest.for_real_predictions,
        )
        for m in registry.ready.values()
    ]
    return ModelList(default_model=settings.default_model, models=summaries)


@api_router.get("/models/{name}", response_model=ModelInfo, responses=ERRORS, tags=["models"])
async def model_info(name: ModelName, request: Request, registry: RegistryDep) -> ModelInfo:
    """The model's manifest: labels, input tensor, preprocessing, quantization, metrics."""
    m = find_model(request, registry, name).manifest
    return ModelInfo(
        name=m.name,
        version=m.version,
        task=m.task,
        description=m.description,
        labels=m.labels,
        num_classes=len(m.labels),
        input=InputInfo(**m.input.model_dump()),
        output_kind=m.output.kind,
        preprocessing=m.preprocessing.model_dump(),
        weights=m.weights,
        for_real_predictions=m.for_real_predictions,
        size_bytes=m.size_bytes,
        sha256=m.sha256,
        quantization=m.quantization,
        metrics=m.metrics,
        tools=m.tools,
    )


@api_router.post(
    "/models/{name}/predict",
    response_model=Prediction,
    responses=ERRORS,
    openapi_extra=IMAGE_BODY,
    tags=["predict"],
)
async def predict(
    name: ModelName,
    request: Request,
    top_k: TopK,
    settings: SettingsDep,
    registry: RegistryDep,
    limits: LimitsDep,
) -> Prediction:
    """Classify one image with model `name`."""
    model = find_model(request, registry, name)
    if is_json(request):
        return await predict_json(request, model, top_k, settings, limits)
    return await predict_one(
        request,
        model,
        top_k,
        max_pixels=settings.max_image_pixels,
        admission=limits.admission,
        workers=limits.workers,
        batcher=limits.batcher(model),
    )


@api_router.post(
    "/predict", response_model=Prediction, responses=ERRORS, openapi_extra=IMAGE_BODY, tags=["predict"]
)
async def predict_default(
    request: Request, top_k: TopK, settings: SettingsDep, registry: RegistryDep, limits: LimitsDep
) -> Prediction:
    """Classify one image with the default model (see `GET /models`)."""
    return await predict(settings.default_model, request, top_k, settings, registry, limits)


def document_settings(schema: dict[str, Any], settings: Any) -> dict[str, Any]:
    """Put the settings-dependent bounds into an OpenAPI document (in place; returned).

    ``top_k``: minimum 1, maximum ``max_top_k``, default ``default_top_k``; the model-name
    path parameter gets ``default_model`` as its example.
    """
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "top_k":
                    parameter["schema"] = {
                        "type": "integer",
                        "maximum": settings.max_top_k,
                        "minimum": 1,
                        "description": TOP_K_HELP,
                        "default": settings.default_top_k,
                        "title": "Top K",
                    }
                elif parameter["name"] == "name" and parameter["in"] == "path":
                    parameter["schema"]["examples"] = [settings.default_model]
    return schema
