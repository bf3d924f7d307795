"""HTTP routes: health, model metadata, and prediction, as module-level handlers.

Handlers get the settings, registry, metrics and admission through the dependencies of
``service.api.dependencies``; a prediction is the engine's chain (``service.engine.pipeline``)
run through the app's ``service.engine.admission.Admission``.
``open_router`` (``/health``) and ``metrics_router`` (``/metrics``, included only when metrics
are enabled) never ask for an API key; ``api_router`` does when keys are configured
(``create_app`` adds the key dependency when including it).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.dependencies import AdmissionDep, MetricsDep, RegistryDep, SettingsDep
from service.api.parameters import ERRORS, ModelName, TopK, check_top_k, record_work, served_model
from service.api.schemas import (
    Health,
    InputInfo,
    ModelInfo,
    ModelList,
    ModelSummary,
    Prediction,
    UnavailableInfo,
)
from service.api.uploads import IMAGE_BODY, read_image
from service.engine.pipeline import EncodedImages

open_router = APIRouter()
metrics_router = APIRouter()  # open too; included only when metrics are enabled
api_router = APIRouter()


@open_router.get("/health", response_model=Health, tags=["health"])
async def health(registry: RegistryDep, settings: SettingsDep) -> Health:
    """Liveness and readiness: which models are serving and which are not, with why."""
    readiness = registry.readiness(settings.default_model)
    return Health(
        status="ok" if readiness.ready else "degraded",
        models=readiness.models,
        unavailable=[UnavailableInfo(name=u.name, reason=u.reason) for u in readiness.unavailable],
    )


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request, metrics: MetricsDep) -> Response:
    """Prometheus metrics (see ``service.observability.metrics.Metrics`` for the names)."""
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
    m = served_model(request, registry, name).manifest
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
    admission: AdmissionDep,
) -> Prediction:
    """Classify one image with model `name`."""
    model = served_model(request, registry, name)
    async with admission.admit():
        data, body_k = await read_image(request, settings)
        k = top_k if body_k is None else check_top_k(body_k, settings.max_top_k, ("body", "top_k"))
        classified = await admission.classify(model, EncodedImages([data]), k)
    (outcome,) = classified.outcomes
    if outcome.error is not None:
        raise outcome.error
    assert outcome.ranking is not None
    record_work(request, classified)
    return Prediction.of(model, outcome.ranking)


@api_router.post(
    "/predict", response_model=Prediction, responses=ERRORS, openapi_extra=IMAGE_BODY, tags=["predict"]
)
async def predict_default(
    request: Request, top_k: TopK, settings: SettingsDep, registry: RegistryDep, admission: AdmissionDep
) -> Prediction:
    """Classify one image with the default model (see `GET /models`)."""
    return await predict(settings.default_model, request, top_k, settings, registry, admission)
