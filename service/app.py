"""The ASGI application: ``service.app:app`` (uvicorn) or ``create_app()`` (tests, Lambda).

Models are loaded when the app is built, not in the ASGI lifespan: Mangum runs the lifespan
on every Lambda invocation (https://github.com/Kludex/mangum/issues/342), while building the
app at import happens once per container, in Lambda's init phase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from service import __doc__ as service_doc
from service.api import openapi
from service.api.error_responses import error_response
from service.api.native import api_router, metrics_router, open_router
from service.api.pages import register_pages
from service.api.parameters import UNAUTHORIZED
from service.config import Settings, get_settings
from service.engine.admission import Admission
from service.engine.cpus import ThreadPlan
from service.engine.registry import ModelRegistry, load_registry
from service.errors import HTTPError, InvalidParameters, ServiceError
from service.middleware.auth import api_key_dependencies
from service.middleware.body_limit import BodySizeLimit
from service.middleware.request_context import REQUEST_ID_HEADER, RequestContext
from service.observability.logs import configure_logging
from service.observability.metrics import Metrics

if TYPE_CHECKING:
    from service.engine.dynamic_batching import Batchers

log = logging.getLogger(__name__)

API_VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None, registry: ModelRegistry | None = None, *, defer_protocols: bool = False
) -> FastAPI:
    """Build the app and load (or take) its model registry.

    Args:
        settings: configuration; defaults to the environment (``Settings.from_env()``).
        registry: already-loaded models; defaults to loading ``settings.model_dir``.
        defer_protocols: build the batch, KServe V1 / TF-Serving and Open Inference Protocol (V2)
            routes on the first request that no other route answers, or when the OpenAPI
            schema is first asked for, instead of now (``DeferredRouters``). The Lambda handler
            sets it: those routes are a third of the app's import and build time, and most
            environments never serve one. Same routes, same order, same schema either way.

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
            "runners": threads.runners,
        },
    )
    if registry is None:
        registry = load_registry(settings.model_dir, threads.intra_op_threads, settings.model_cache)
    # With EDGE_OTEL the request middleware makes the SERVER span (continuing traceparent, with
    # the model attributes); FastAPI's own request tracing would add a second one per request.
    fastapi_options: dict[str, Any] = {"telemetry": {"tracing": False}} if settings.otel else {}
    app = FastAPI(
        title="edge-infer",
        version=API_VERSION,
        summary=service_doc,
        description=(
            "Upload an image, get the class, its confidence and the top-k. Models are int8 "
            "ONNX files run by ONNX Runtime; see `GET /models` for what is served."
        ),
        # Swagger UI is served offline by service.api.pages (FastAPI's defaults load it from a CDN).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        **fastapi_options,
    )
    metrics = Metrics() if settings.metrics_enabled else None
    if metrics is not None:
        metrics.set_models(sorted(registry.ready), sorted(registry.unavailable))
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.admission = Admission(
        settings.max_pending_predictions,
        threads.workers,
        _batchers(settings, threads, metrics),
        max_pixels=settings.max_image_pixels,
        chunk=settings.batch_chunk,
    )
    _register_error_handlers(app)
    deferred = _include_routes(app, settings, metrics_enabled=metrics is not None, defer=defer_protocols)
    register_pages(app, docs_enabled=settings.docs_enabled, api_key_header=settings.api_key_header)
    if deferred is not None:
        app.router.routes.append(deferred)  # last: it is asked only when no other route matched
    _add_middleware(app, settings, metrics)
    return app


def _batchers(settings: Settings, threads: ThreadPlan, metrics: Metrics | None) -> Batchers | None:
    """The dynamic batchers (``service.engine.dynamic_batching``), or None when batching is off."""
    if not settings.dynamic_batching:
        return None
    from service.engine.dynamic_batching import Batchers  # lazily: Lambda, batching off, never imports it

    log.info(
        "dynamic batching",
        extra={
            "max_batch_size": settings.max_batch_size,
            "max_batch_delay_ms": settings.max_batch_delay_ms,
            "runners": threads.runners,
        },
    )
    return Batchers(
        settings.max_batch_size,
        settings.max_batch_delay_ms / 1000.0,
        threads.runners,
        settings.batch_chunk,
        metrics,
    )


def _protocol_routers() -> tuple[list[APIRouter], list[APIRouter]]:
    """(routers open like ``/health``, routers behind the API key) of the batch, number and
    protocol routes."""
    from service.api import batch as batch_routes
    from service.api import number as number_routes
    from service.api import v1 as v1_routes
    from service.api import v2 as v2_routes

    keyed = [batch_routes.router, number_routes.router, v1_routes.router, v2_routes.router]
    return [v2_routes.open_router], keyed


def _include_routes(
    app: FastAPI, settings: Settings, metrics_enabled: bool, defer: bool
) -> DeferredRouters | None:
    """``/health`` and ``/metrics`` stay open (probes, scrapers); the rest need a key if set.

    Returns the placeholder of the protocol routes when ``defer``, else None (all included).
    """
    auth = api_key_dependencies(settings.api_keys, settings.api_key_header)

    def include_open(routers: list[APIRouter]) -> None:
        for router in routers:
            include(router, [], {})

    def include_keyed(routers: list[APIRouter]) -> None:
        for router in routers:
            include(router, auth, {401: UNAUTHORIZED} if auth else {})

    def include(router: APIRouter, dependencies: list[Any], responses: dict[int | str, Any]) -> None:
        if defer and not dependencies and not responses:
            # Nothing to add to the router's own routes: take them as they are. include_router
            # would build each route a second time, with the inclusion's context, on the first
            # request reaching it (benchmarks/startup/lambda_cold.py times the first requests). The routes
            # then ignore app.dependency_overrides, which the service does not use.
            app.router.routes.extend(router.routes)
        else:
            app.include_router(router, dependencies=dependencies, responses=responses)

    include_open([open_router])
    after_open = len(app.router.routes)
    if metrics_enabled:
        include_open([metrics_router])
    include_keyed([api_router])
    after_keyed = len(app.router.routes)

    def include_protocols() -> None:
        # At their places: /v2/health/* after /health (probes), the rest after the native API.
        opened, keyed = _protocol_routers()
        _insert_included(app, after_keyed, lambda: include_keyed(keyed))
        _insert_included(app, after_open, lambda: include_open(opened))

    deferred = DeferredRouters(app, include_protocols) if defer else None
    if deferred is None:
        include_protocols()
    build_openapi = app.openapi

    def documented() -> dict[str, Any]:
        if deferred is not None:
            deferred.include()
        if app.openapi_schema is None:
            app.openapi_schema = openapi.complete(build_openapi(), settings)
        return app.openapi_schema

    app.openapi = documented  # type: ignore[method-assign]
    return deferred


def _insert_included(app: FastAPI, index: int, include: Callable[[], None]) -> None:
    """Run ``include`` (which appends routes) and move what it appended to ``index``."""
    routes = app.router.routes
    start = len(routes)
    include()
    added = routes[start:]
    del routes[start:]
    routes[index:index] = added


class DeferredRouters(BaseRoute):
    """Stands, last in the app's routes, for routers that are included on first need.

    Starlette asks each route in order whether it matches; only a request that no route before
    this one fully matched reaches it. Then it includes the routers (at their own places, so
    the app ends up exactly as if built eagerly), removes itself, and hands the request back to
    the router, which now routes it -- or answers 404 / 405 as it would have. ``include`` is
    also called before the OpenAPI schema is built. Idempotent; requests are served on one
    event loop, so two cannot include at once.
    """

    def __init__(self, app: FastAPI, include: Callable[[], None]) -> None:
        self._app = app
        self._include: Callable[[], None] | None = include

    def include(self) -> None:
        if self._include is None:
            return
        include, self._include = self._include, None
        self._app.router.routes.remove(self)
        include()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if self._include is not None and scope["type"] == "http" else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.include()
        await self._app.router.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """A route name, looked up once the routers are in (``request.url_for`` reaches here
        only when no route before this one has the name)."""
        self.include()
        return self._app.router.url_path_for(name, **path_params)


def _add_middleware(app: FastAPI, settings: Settings, metrics: Metrics | None) -> None:
    # add_middleware wraps what is already there: the last added runs first on a request.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        # Off unless EDGE_CORS_ORIGINS is set: browsers then refuse cross-origin calls.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Content-Type",
                settings.api_key_header,
                REQUEST_ID_HEADER,
                "traceparent",
                "tracestate",
            ],
            expose_headers=[REQUEST_ID_HEADER, "traceparent"],
            max_age=600,
        )
    spans = emf = None
    if settings.otel:
        from service.observability.otel import RequestSpans

        spans = RequestSpans()
    if settings.emf:
        from service.observability.emf import EmfWriter

        emf = EmfWriter()
    app.add_middleware(RequestContext, metrics=metrics, spans=spans, emf=emf)


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
