"""ASGI middleware: a request id and W3C trace context on every response and log line, one
access log line per request with its latency, and the request's metrics (Prometheus, EMF) and
spans (OpenTelemetry), each when enabled.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``) so streaming bodies and the
byte limit below it keep working and no extra task is spawned per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.error_responses import error_response
from service.errors import InternalError
from service.observability.logs import request_id_var
from service.observability.metrics import Metrics, RequestRecord
from service.observability.stages import StageTimes, stage_times_var
from service.observability.trace_context import TRACEPARENT, from_headers, trace_context_var

if TYPE_CHECKING:
    from service.observability.emf import EmfWriter
    from service.observability.otel import RequestSpans

REQUEST_ID_HEADER = "x-request-id"
# A caller-supplied id is echoed only if it is short and plain, so it cannot inject fake log
# fields or response headers; otherwise a fresh one is generated.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CLIENT_CLOSED = 499
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

access_log = logging.getLogger("service.access")
log = logging.getLogger(__name__)


class RequestContext:
    """Outermost middleware.

    Request id: the caller's ``X-Request-ID`` when it matches ``[A-Za-z0-9._:-]{1,128}``, else
    API Gateway's ``requestContext.requestId`` (Lambda via Mangum), else a random UUID4 hex; it
    is returned in the ``X-Request-ID`` response header.

    Trace: the caller's ``traceparent`` (or ``X-Amzn-Trace-Id``) is continued with a new span id
    (``service.observability.trace_context``), returned in the ``traceparent`` response header.

    Routes may set ``request.state.model`` (a model name the registry knows) and
    ``request.state.inference_seconds``; both end up in the access log and the per-model metrics.
    Stage timings come from ``service.observability.stages``.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics | None = None,
        spans: RequestSpans | None = None,
        emf: EmfWriter | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.spans = spans
        self.emf = emf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        # Routes write request.state into this dict; created here so it is the same object.
        scope.setdefault("state", {})
        token = request_id_var.set(request_id)
        trace = from_headers(scope.get("headers", []))
        times = StageTimes()
        opened = None
        if self.spans is not None:
            opened, trace = self.spans.start(trace, scope["method"], scope["path"])
            times.tracer = self.spans.tracer
        trace_token = trace_context_var.set(trace)
        times_token = stage_times_var.set(times)
        start = time.perf_counter()
        status = 500
        started = False
        if self.metrics is not None:
            self.metrics.in_progress.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                headers.append((TRACEPARENT.encode(), trace.traceparent.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away mid-upload: nobody to answer, nothing wrong with the server.
            # 499 is nginx's status for it, used here only in the log and metrics.
            if not started:
                status = CLIENT_CLOSED
        except Exception:
            # Answered here rather than by Starlette's outer error middleware so that the 500
            # carries the request id too. The trace goes to the log, never to the client.
            log.exception("unhandled error")
            if started:
                raise
            await error_response(InternalError(), scope["path"])(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            record = self._record(scope, status, seconds)
            if self.metrics is not None:
                self.metrics.in_progress.dec()
            if self.emf is not None:
                self.emf.write(record, times, request_id, trace.trace_id)
            if opened is not None:
                assert self.spans is not None
                self.spans.end(opened, record.route, status, scope.get("state") or {}, times)
            stage_times_var.reset(times_token)
            trace_context_var.reset(trace_token)
            request_id_var.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> RequestRecord:
        state = scope.get("state") or {}
        model = state.get("model")
        inference = state.get("inference_seconds")
        route = scope.get("route")
        # The template, not the raw path: bounded label values for metrics.
        route_label = getattr(route, "path", None) or "(unmatched)"
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "route": route_label,
            "status": status,
            "duration_ms": round(seconds * 1000.0, 3),
        }
        if model is not None:
            fields["model"] = model
        if inference is not None:
            fields["inference_ms"] = round(inference * 1000.0, 3)
        level = logging.ERROR if status >= 500 else logging.INFO
        # The message reads on its own in plain-text logs; JSON logs also get each field.
        # unicode_escape: a %0A in the path must not start a forged line in plain-text logs.
        path = scope["path"].encode("unicode_escape").decode("ascii")
        message = f"{scope['method']} {path} {status} {fields['duration_ms']} ms"
        access_log.log(level, message, extra=fields)
        record = RequestRecord(method, route_label, status, seconds, model, inference)
        if self.metrics is not None:
            self.metrics.observe(record)
        return record


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SAFE_ID.match(candidate):
                return candidate
            break
    event = scope.get("aws.event")  # set by Mangum on Lambda
    if isinstance(event, dict):
        context = event.get("requestContext")
        if isinstance(context, dict):
            gateway_id = context.get("requestId")
            if isinstance(gateway_id, str) and _SAFE_ID.match(gateway_id):
                return gateway_id
    return uuid.uuid4().hex
