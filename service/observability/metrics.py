"""Prometheus metrics (prometheus-client), served in the text exposition format at ``/metrics``.

Every app gets its own ``CollectorRegistry`` so several apps can live in one process (tests).
Label values are bounded: ``route`` is the route template (``/models/{name}/predict``, never
the raw path), ``model`` is a name the registry knows, so probing random URLs or model names
cannot grow the number of time series. One process per container is assumed (uvicorn without
``--workers``): counters are per process, as prometheus-client keeps them.

``prometheus_client`` is imported only when metrics are enabled: it costs tens of ms at import,
and on Lambda (metrics off by default) that would be paid in every cold start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Seconds. Digit models answer in ~1 ms, ImageNet-size ones in tens to hundreds of ms on one core.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds in the dynamic batcher's queue: 0 when the model is idle, about one batch run when not.
QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Images per ONNX Runtime call (powers of two up to the largest EDGE_MAX_BATCH_IMAGES default).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class RequestRecord:
    """What the request middleware knows once a response has been sent."""

    method: str
    route: str
    status: int
    seconds: float
    model: str | None = None
    inference_seconds: float | None = None


class Metrics:
    """The service's metrics and their registry.

    Metric names (all prefixed ``edge_``):
        http_requests_total{method,route,status}: every request.
        http_request_duration_seconds{method,route}: histogram, request latency in seconds.
        http_requests_in_progress: gauge.
        model_requests_total{model,status}: requests addressed to a known model.
        model_errors_total{model,kind}: of those, ``kind`` = client (4xx) or server (5xx).
        model_request_duration_seconds{model}: histogram, end-to-end latency in seconds.
        model_inference_duration_seconds{model}: histogram, decode + preprocess + ONNX Runtime
            run in the worker thread, in seconds (excludes queueing and upload).
        model_ready{model}: gauge, 1 when the model is serving, 0 when unavailable.
        model_queue_duration_seconds{model}: histogram, seconds a request's prepared tensor
            waited in the dynamic batcher's queue for ONNX Runtime (Triton's
            ``nv_inference_queue_duration_us``, TorchServe's ``ts_queue_latency_microseconds``,
            in Prometheus base units).
        model_batch_size{model}: histogram, images per ONNX Runtime call of the batcher.
        model_queue_depth{model}: gauge, images waiting in the batcher's queue (not running).
    The three batcher metrics exist only when dynamic batching is on (never on Lambda).
    Plus the standard ``process_*`` (RSS, CPU, open fds) and ``python_gc_*`` collectors.
    """

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            GCCollector,
            Histogram,
            ProcessCollector,
            disable_created_metrics,
        )

        # The *_created series (one timestamp per label set) double the output for no use here.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.http_requests = Counter(
            "edge_http_requests_total", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "edge_http_request_duration_seconds",
            "HTTP request latency in seconds.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge("edge_http_requests_in_progress", "HTTP requests being served.", registry=r)
        self.model_requests = Counter(
            "edge_model_requests_total", "Requests to a model.", ["model", "status"], registry=r
        )
        self.model_errors = Counter(
            "edge_model_errors_total",
            "Requests to a model answered with an error; kind = client (4xx) or server (5xx).",
            ["model", "kind"],
            registry=r,
        )
        self.model_latency = Histogram(
            "edge_model_request_duration_seconds",
            "End-to-end latency of requests to a model, in seconds.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_latency = Histogram(
            "edge_model_inference_duration_seconds",
            "Decode + preprocess + ONNX Runtime inference in the worker thread, in seconds.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_ready = Gauge(
            "edge_model_ready",
            "1 if the model is serving, 0 if unavailable.",
            ["model"],
            registry=r,
        )

        self.queue_latency = Histogram(
            "edge_model_queue_duration_seconds",
            "Seconds a prepared request waited in the dynamic batcher's queue for ONNX Runtime.",
            ["model"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "edge_model_batch_size",
            "Images per ONNX Runtime call made by the dynamic batcher.",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "edge_model_queue_depth",
            "Images waiting in the dynamic batcher's queue (not yet running).",
            ["model"],
            registry=r,
        )

    def observe_batch(self, model: str, size: int, queue_seconds: Sequence[float]) -> None:
        """One batcher call of ``size`` images; each request's seconds in the queue."""
        self.batch_size.labels(model).observe(size)
        histogram = self.queue_latency.labels(model)
        for seconds in queue_seconds:
            histogram.observe(seconds)

    def set_queue_depth(self, model: str, images: int) -> None:
        """Images waiting in ``model``'s batcher queue now."""
        self.queue_depth.labels(model).set(images)

    def set_models(self, ready: list[str], unavailable: list[str]) -> None:
        for name in ready:
            self.model_ready.labels(name).set(1)
        for name in unavailable:
            self.model_ready.labels(name).set(0)

    def observe(self, record: RequestRecord) -> None:
        status = str(record.status)
        self.http_requests.labels(record.method, record.route, status).inc()
        self.http_latency.labels(record.method, record.route).observe(record.seconds)
        if record.model is None:
            return
        self.model_requests.labels(record.model, status).inc()
        if record.status >= 400:
            kind = "server" if record.status >= 500 else "client"
            self.model_errors.labels(record.model, kind).inc()
        self.model_latency.labels(record.model).observe(record.seconds)
        if record.inference_seconds is not None:
            self.inference_latency.labels(record.model).observe(record.inference_seconds)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """(body, content type): the registry in the format the scraper's ``Accept`` asks for.

        prometheus-client's own content negotiation: Prometheus text format by default,
        OpenMetrics when requested.
        """
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
