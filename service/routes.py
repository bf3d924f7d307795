"""HTTP routes: health, model metadata, and prediction. Registered by ``register_routes``."""

# No `from __future__ import annotations` here: FastAPI must resolve the closure-local
# `TopK` annotation when routes are defined.
import time
from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from starlette.datastructures import UploadFile

from .auth import api_key_dependencies
from .config import Settings
from .errors import BadImage, InvalidForm, ModelNotFound, ModelUnavailable, Overloaded, ServiceError
from .imaging import ALLOWED_FORMATS, decode_image
from .inference import Ranked, classify
from .metrics import Metrics
from .registry import LoadedModel, ModelRegistry
from .schemas import (
    ClassProbability,
    ErrorResponse,
    Health,
    InputInfo,
    ModelInfo,
    ModelList,
    ModelSummary,
    Prediction,
    UnavailableInfo,
)

UPLOAD_FIELD = "file"

_ERRORS = {
    400: {"model": ErrorResponse, "description": "Empty, truncated or corrupt image."},
    404: {"model": ErrorResponse, "description": "Unknown model."},
    413: {"model": ErrorResponse, "description": "Body over the byte limit or image over the pixel limit."},
    415: {"model": ErrorResponse, "description": "Not an image, or an unsupported format."},
    422: {"model": ErrorResponse, "description": "Invalid parameter or form field."},
    503: {
        "model": ErrorResponse,
        "description": "Model found but not loaded (see /health), or the server is busy (Retry-After).",
    },
}

_UNAUTHORIZED = {"model": ErrorResponse, "description": "Missing or invalid API key."}

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "The image: a multipart form with the file in field `file` (`curl -F file=@digit.png`), "
            f"or the raw bytes as the body. Formats: {', '.join(ALLOWED_FORMATS)}."
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
        },
    }
}


def register_routes(
    app: FastAPI, settings: Settings, registry: ModelRegistry, metrics: Metrics | None = None
) -> None:
    """Attach every route to ``app``; handlers read models from ``registry``.

    ``/health`` and ``/metrics`` are always open (load balancers and scrapers); every other
    route needs an API key when ``settings.api_keys`` is set. ``/metrics`` exists only when
    ``metrics`` is given.
    """
    open_router = APIRouter()
    auth = api_key_dependencies(settings.api_keys, settings.api_key_header)
    router = APIRouter(dependencies=auth)
    errors = {**_ERRORS, **({401: _UNAUTHORIZED} if auth else {})}
    limiter = anyio.CapacityLimiter(settings.resolved_inference_workers())
    pending = _Pending()
    ModelName = Annotated[
        str,
        Path(
            max_length=64,
            description="A model name from `GET /models`.",
            examples=[settings.default_model],
        ),
    ]
    TopK = Annotated[
        int,
        Query(ge=1, le=settings.max_top_k, description="How many classes to return, most probable first."),
    ]

    @open_router.get("/health", response_model=Health, tags=["health"])
    async def health() -> Health:
        """Liveness and readiness: which models are serving and which are not, with why."""
        unavailable = [UnavailableInfo(name=u.name, reason=u.reason) for u in registry.unavailable.values()]
        status = "ok" if registry.ready and not unavailable else "degraded"
        return Health(status=status, models=sorted(registry.ready), unavailable=unavailable)

    @router.get("/models", response_model=ModelList, tags=["models"])
    async def list_models() -> ModelList:
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

    @router.get("/models/{name}", response_model=ModelInfo, responses=errors, tags=["models"])
    async def model_info(name: ModelName) -> ModelInfo:
        """The model's manifest: labels, input tensor, preprocessing, quantization, metrics."""
        m = _lookup(registry, name).manifest
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

    async def predict_with(name: str, request: Request, top_k: int) -> Prediction:
        if registry.get(name) is not None:
            # Only names the registry knows become a metrics label (bounded cardinality).
            request.state.model = name
        model = _lookup(registry, name)
        # Admission control before the body is read: a flood gets fast 503s instead of an
        # ever-longer queue holding every upload in memory. One event loop: no lock needed
        # between the check and the increment (no await in between).
        if pending.count >= settings.max_pending_predictions:
            raise Overloaded(
                f"server busy: {pending.count} predictions in progress; retry shortly",
                headers={"Retry-After": "1"},
            )
        pending.count += 1
        try:
            data = await _read_image_bytes(request)
            work = partial(_timed_decode_and_classify, model, data, settings.max_image_pixels, top_k)
            # Off the event loop, at most `limiter` at once: /health keeps answering under load.
            ranked, request.state.inference_seconds = await anyio.to_thread.run_sync(work, limiter=limiter)
        finally:
            pending.count -= 1
        best = ranked[0]
        return Prediction(
            model=model.name,
            model_version=model.manifest.version,
            prediction=best.label,
            class_index=best.class_index,
            confidence=best.probability,
            top_k=[
                ClassProbability(label=r.label, class_index=r.class_index, probability=r.probability)
                for r in ranked
            ],
            for_real_predictions=model.manifest.for_real_predictions,
        )

    @router.post(
        "/models/{name}/predict",
        response_model=Prediction,
        responses=errors,
        openapi_extra=_IMAGE_BODY,
        tags=["predict"],
    )
    async def predict(
        name: ModelName,
        request: Request,
        top_k: TopK = settings.default_top_k,
    ) -> Prediction:
        """Classify one image with model `name`."""
        return await predict_with(name, request, top_k)

    @router.post(
        "/predict",
        response_model=Prediction,
        responses=errors,
        openapi_extra=_IMAGE_BODY,
        tags=["predict"],
    )
    async def predict_default(request: Request, top_k: TopK = settings.default_top_k) -> Prediction:
        """Classify one image with the default model (see `GET /models`)."""
        return await predict_with(settings.default_model, request, top_k)

    if metrics is not None:

        @open_router.get("/metrics", include_in_schema=False)
        async def prometheus_metrics(request: Request) -> Response:
            """Prometheus metrics (see ``service.metrics.Metrics`` for the names)."""
            body, content_type = metrics.exposition(request.headers.get("accept"))
            return Response(body, media_type=content_type)

    app.include_router(open_router)
    app.include_router(router)


class _Pending:
    """Predictions admitted and not finished (read and written on the event loop only)."""

    def __init__(self) -> None:
        self.count = 0


def _lookup(registry: ModelRegistry, name: str) -> LoadedModel:
    found = registry.get(name)
    if found is None:
        known = ", ".join(sorted(registry.ready)) or "none"
        raise ModelNotFound(f"no model named {name!r}; models being served: {known}")
    if not isinstance(found, LoadedModel):
        raise ModelUnavailable(f"model {name!r} is not available: {found.reason}")
    return found


async def _read_image_bytes(request: Request) -> bytes:
    """The uploaded file: multipart field ``file``, or else the raw request body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return await request.body()
    # Starlette turns multipart errors (too many files or fields, malformed) into 400.
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get(UPLOAD_FIELD)
        if upload is None:
            fields = ", ".join(repr(k) for k in form) or "none"
            raise InvalidForm(f"multipart body has no field {UPLOAD_FIELD!r} (fields sent: {fields})")
        if not isinstance(upload, UploadFile):
            raise InvalidForm(f"multipart field {UPLOAD_FIELD!r} must be a file, not a text value")
        return await upload.read()


def _timed_decode_and_classify(
    model: LoadedModel, data: bytes, max_pixels: int, k: int
) -> tuple[list[Ranked], float]:
    """(ranking, seconds spent decoding, preprocessing and running the model); worker thread."""
    start = time.perf_counter()
    ranked = _decode_and_classify(model, data, max_pixels, k)
    return ranked, time.perf_counter() - start


def _decode_and_classify(model: LoadedModel, data: bytes, max_pixels: int, k: int) -> list[Ranked]:
    image = decode_image(data, max_pixels)
    try:
        return classify(model, image, k)
    except ServiceError:
        raise
    except (ValueError, OSError) as exc:  # pixel data that decoded but cannot be converted
        raise BadImage(f"image could not be converted for {model.name}: {exc}") from None
