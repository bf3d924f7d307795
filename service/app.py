"""The ASGI application: ``service.app:app`` (uvicorn) or ``create_app()`` (tests, Lambda).

Models are loaded when the app is built, not in the ASGI lifespan: Mangum runs the lifespan
on every Lambda invocation (https://github.com/Kludex/mangum/issues/342), while building the
app at import happens once per container, in Lambda's init phase.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from . import __doc__ as service_doc
from .config import Settings, get_settings
from .errors import ServiceError
from .limits import BodySizeLimit
from .logs import configure_logging
from .metrics import Metrics
from .registry import ModelRegistry, load_registry
from .request_context import REQUEST_ID_HEADER, RequestContext
from .routes import register_routes

log = logging.getLogger(__name__)

API_VERSION = "0.1.0"


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """Build the app and load (or take) its model registry.

    Args:
        settings: configuration; defaults to the environment (``EDGE_*`` variables).
        registry: already-loaded models; defaults to loading ``settings.model_dir``.
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    if registry is None:
        registry = load_registry(settings.model_dir, settings.resolved_intra_op_threads())
    app = FastAPI(
        title="edge-infer",
        version=API_VERSION,
        summary=service_doc,
        description=(
            "Upload an image, get the class, its confidence and the top-k. Models are int8 "
            "ONNX files run by ONNX Runtime; see `GET /models` for what is served."
        ),
    )
    metrics = Metrics() if settings.metrics_enabled else None
    if metrics is not None:
        metrics.set_models(sorted(registry.ready), sorted(registry.unavailable))
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    _register_error_handlers(app)
    register_routes(app, settings, registry, metrics)
    # add_middleware wraps what is already there: the last added runs first on a request.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        # Off unless EDGE_CORS_ORIGINS is set: browsers then refuse cross-origin calls.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", settings.api_key_header, REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
    app.add_middleware(RequestContext, metrics=metrics)
    return app


def _register_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Logged with its trace for operators; the client gets no internals.
        log.exception("unhandled error")
        return JSONResponse({"detail": "internal error"}, status_code=500)


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `service.app:app` is built on first access, so importing create_app loads no models.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
