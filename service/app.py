"""The ASGI application: ``service.app:app`` (uvicorn) or ``create_app()`` (tests, Lambda).

Models are loaded when the app is built, not in the ASGI lifespan: Mangum runs the lifespan
on every Lambda invocation (https://github.com/Kludex/mangum/issues/342), while building the
app at import happens once per container, in Lambda's init phase.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException
from starlette.responses import Response

from . import __doc__ as service_doc
from . import batch_routes, v1_routes, v2_routes
from .auth import api_key_dependencies
from .config import Settings, get_settings
from .dependencies import Limits
from .errors import HTTPError, InvalidParameters, ServiceError, error_response
from .limits import BodySizeLimit
from .logs import configure_logging
from .metrics import Metrics
from .pages import register_pages
from .registry import ModelRegistry, load_registry
from .request_context import REQUEST_ID_HEADER, RequestContext
from .routes import UNAUTHORIZED, api_router, document_settings, metrics_router, open_router

log = logging.getLogger(__name__)

API_VERSION = "0.1.0"


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """Build the app and load (or take) its model registry.

    Args:
        settings: configuration; defaults to the environment (``Settings.from_env()``).
        registry: already-loaded models; defaults to loading ``settings.model_dir``.

    Raises:
        pydantic.ValidationError: the environment's settings are invalid (the server must not
            start; uvicorn exits non-zero with the message).
    """
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    threads = settings.thread_plan()
    log.info(
        "thread plan",
        extra={
            "cpu_budget": threads.budget,
            "workers": threads.workers,
            "intra_op_threads": threads.intra_op_threads,
        },
    )
    if registry is None:
        registry = load_registry(settings.model_dir, threads.intra_op_threads)
    app = FastAPI(
        title="edge-infer",
        version=API_VERSION,
        summary=service_doc,
        description=(
            "Upload an image, get the class, its confidence and the top-k. Models are int8 "
            "ONNX files run by ONNX Runtime; see `GET /models` for what is served."
        ),
        # Swagger UI is served offline by service.pages (FastAPI's defaults load it from a CDN).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    metrics = Metrics() if settings.metrics_enabled else None
    if metrics is not None:
        metrics.set_models(sorted(registry.ready), sorted(registry.unavailable))
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.limits = Limits.from_settings(settings, threads.workers)
    _register_error_handlers(app)
    _include_routes(app, settings, metrics_enabled=metrics is not None)
    register_pages(app, docs_enabled=settings.docs_enabled, api_key_header=settings.api_key_header)
    _add_middleware(app, settings, metrics)
    return app


def _include_routes(app: FastAPI, settings: Settings, metrics_enabled: bool) -> None:
    """``/health`` and ``/metrics`` stay open (probes, scrapers); the rest need a key if set."""
    auth = api_key_dependencies(settings.api_keys, settings.api_key_header)
    app.include_router(open_router)
    app.include_router(v2_routes.open_router)  # /v2/health/*: probes, like /health
    if metrics_enabled:
        app.include_router(metrics_router)
    for router in (api_router, batch_routes.router, v1_routes.router, v2_routes.router):
        app.include_router(router, dependencies=auth, responses={401: UNAUTHORIZED} if auth else {})
    openapi = app.openapi

    def documented() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_settings(openapi(), settings)
        return app.openapi_schema

    app.openapi = documented  # type: ignore[method-assign]


def _add_middleware(app: FastAPI, settings: Settings, metrics: Metrics | None) -> None:
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


def _register_error_handlers(app: FastAPI) -> None:
    """Every error becomes a ``ServiceError`` and its response comes from ``error_response``.

    Anything else raised by a route reaches ``RequestContext``, which answers the 500 (with
    the request id) through the same function.
    """

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        error = HTTPError(exc.status_code, exc.detail, dict(exc.headers or {}) or None)
        return error_response(error, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> Response:
        return error_response(InvalidParameters(jsonable_encoder(exc.errors())), request.url.path)


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `service.app:app` is built on first access, so importing create_app loads no models.
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = create_app()
    return _app
