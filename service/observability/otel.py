"""OpenTelemetry spans for each request and its stages, exported over OTLP (``EDGE_OTEL=true``).

Imported only when enabled, and it imports the SDK only then: the ``otel`` extra
(``opentelemetry-sdk``, ``opentelemetry-exporter-otlp-proto-http``) is not in the Lambda package
and costs nothing when off. The exporter reads the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``..., ``OTEL_SERVICE_NAME``:
https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/). A tracer
provider installed before the app is built (``opentelemetry-instrument``, a test's in-memory
exporter) is used as it is.

Spans: one SERVER span per HTTP request, named ``{method} {route template}``, child of the
caller's ``traceparent`` (``service.observability.trace_context``), with the HTTP semantic-convention
attributes (``http.request.method``, ``http.route``, ``http.response.status_code``,
``url.path``) and ``edge_infer.model.name``, ``edge_infer.model.version``,
``edge_infer.batch_size`` when the request reached a model; status ERROR for a 5xx
(https://opentelemetry.io/docs/specs/semconv/http/http-spans/). Under it, one INTERNAL span per
stage: ``decode``, ``preprocess``, ``inference`` (``service.observability.stages``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from service.observability.stages import StageTimes
from service.observability.trace_context import TraceContext

TRACER_NAME = "edge_infer"


def _provider() -> Any:
    """The global tracer provider; an SDK one exporting over OTLP/HTTP if none was installed.

    Raises:
        RuntimeError: the ``otel`` extra is not installed.
    """
    try:
        from opentelemetry import trace
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("EDGE_OTEL=true needs the otel extra: pip install 'edge-infer[otel]'") from exc
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("EDGE_OTEL=true needs the otel extra: pip install 'edge-infer[otel]'") from exc
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "edge-infer")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


@dataclass
class OpenSpan:
    span: Any
    token: object


class RequestSpans:
    """Starts and ends the request spans for ``service.middleware.request_context.RequestContext``.

    On Lambda the environment is frozen between invocations, so a batch processor's export
    thread would not run: the provider is flushed when each request ends.
    """

    def __init__(self, provider: Any = None, flush_each_request: bool | None = None) -> None:
        from opentelemetry import trace

        self._provider = provider or _provider()
        self.tracer = self._provider.get_tracer(TRACER_NAME)
        self._trace = trace
        if flush_each_request is None:
            flush_each_request = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
        self._flush = flush_each_request and hasattr(self._provider, "force_flush")

    def start(self, context: TraceContext, method: str, path: str) -> tuple[OpenSpan, TraceContext]:
        """Open the request's span as the current span; the trace context it really has (the
        span's own ids: with no caller, the SDK picks the trace id)."""
        from opentelemetry import context as otel_context
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.span import TraceState

        parent = None
        if context.parent_id is not None:
            state = TraceState.from_header([context.tracestate]) if context.tracestate else None
            remote = SpanContext(
                trace_id=int(context.trace_id, 16),
                span_id=int(context.parent_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(context.flags),
                trace_state=state,
            )
            parent = self._trace.set_span_in_context(NonRecordingSpan(remote))
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        token = otel_context.attach(self._trace.set_span_in_context(span))
        own = span.get_span_context()
        if own.is_valid:
            context = replace(
                context,
                trace_id=format(own.trace_id, "032x"),
                span_id=format(own.span_id, "016x"),
                flags=int(own.trace_flags),
            )
        return OpenSpan(span, token), context

    def end(self, opened: OpenSpan, route: str, status: int, state: dict, times: StageTimes) -> None:
        """Name, attribute and end the span; detach it from the context."""
        from opentelemetry import context as otel_context
        from opentelemetry.trace import Status, StatusCode

        span = opened.span
        try:
            if route != "(unmatched)":
                span.update_name(f"{span.name} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if state.get("model") is not None:
                span.set_attribute("edge_infer.model.name", state["model"])
            if state.get("model_version") is not None:
                span.set_attribute("edge_infer.model.version", state["model_version"])
            if times.batch_size:
                span.set_attribute("edge_infer.batch_size", times.batch_size)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
        finally:
            otel_context.detach(opened.token)  # type: ignore[arg-type]
        if self._flush:
            self._provider.force_flush(5_000)
