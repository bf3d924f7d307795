"""W3C Trace Context over real HTTP: a ``traceparent`` in is continued (same trace id, new span
id) in the response and in the JSON access log; and OpenTelemetry spans, exported to the SDK's
in-memory exporter, for the request and its stages.

Header cases are the W3C specification's (https://www.w3.org/TR/trace-context/#traceparent-header).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from service.observability.trace_context import parse_traceparent, parse_xray

from .support import encode, mnist_test_digits, running_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{TRACE_ID}-{PARENT_ID}-01", (TRACE_ID, PARENT_ID, 1)),
        (f"00-{TRACE_ID}-{PARENT_ID}-00", (TRACE_ID, PARENT_ID, 0)),
        # A later version may add fields after the flags; the first four are read.
        (f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-holds", (TRACE_ID, PARENT_ID, 1)),
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),  # version ff is invalid
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),  # all-zero trace id
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),  # all-zero parent id
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),  # upper-case hex
        (f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01", None),  # short trace id
        ("not a traceparent", None),
        ("", None),
    ],
)
def test_traceparent_parsing_follows_the_specification(header: str, expected) -> None:
    assert parse_traceparent(header) == expected


def test_xray_root_maps_to_the_same_128_bit_trace_id() -> None:
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert parse_xray(header) == ("5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8", 1)
    assert parse_xray("Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793") == (
        "5759e988bd862e3fe1be46a994272793",
        None,
        0,
    )
    for bad in (
        "Root=garbage",
        "Root=1-5759e988-bd862e3fe1be46a99427279",  # 23 hex digits, not 24
        "Root=2-5759e988-bd862e3fe1be46a994272793",  # unknown version
        "Root=1-5759E988-BD862E3FE1BE46A994272793",  # upper case
        "Parent=53995c3f42cd8ad8;Sampled=1",  # no root
    ):
        assert parse_xray(bad) is None, bad


@pytest.fixture(scope="module")
def server() -> Iterator:
    with running_server() as running:
        yield running


@pytest.fixture(scope="module")
def digit_png() -> bytes:
    digits, _ = mnist_test_digits(1)
    return encode(digits[0])


def _access_line(server, request_id: str) -> dict:
    """The JSON access-log line of the request with ``request_id`` (the log is written after
    the response, so it may take a moment to appear)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.log_lines():
            if request_id in line and '"service.access"' in line:
                return json.loads(line)
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


def test_traceparent_in_same_trace_id_out_and_in_the_log(server, digit_png: bytes) -> None:
    response = httpx.post(
        f"{server.url}/predict",
        content=digit_png,
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "x-request-id": "trace-test-1"},
        timeout=30,
    )
    assert response.status_code == 200
    trace_id, span_id, flags = TRACEPARENT.match(response.headers["traceparent"]).groups()
    assert trace_id == TRACE_ID and flags == "01"
    assert span_id != PARENT_ID  # this request's own span, child of the caller's
    line = _access_line(server, "trace-test-1")
    assert (line["trace_id"], line["span_id"]) == (trace_id, span_id)


def test_invalid_or_missing_traceparent_starts_a_new_trace(server) -> None:
    seen = set()
    for headers in ({}, {"traceparent": f"00-{'0' * 32}-{PARENT_ID}-01"}):
        response = httpx.get(f"{server.url}/health", headers=headers, timeout=10)
        trace_id, _, flags = TRACEPARENT.match(response.headers["traceparent"]).groups()
        assert trace_id != "0" * 32 and flags == "00"
        seen.add(trace_id)
    assert len(seen) == 2


def test_load_balancer_xray_header_is_continued(server) -> None:
    response = httpx.get(
        f"{server.url}/health",
        headers={
            "x-amzn-trace-id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        },
        timeout=10,
    )
    assert response.headers["traceparent"].startswith("00-5759e988bd862e3fe1be46a994272793-")
    assert response.headers["traceparent"].endswith("-01")


# --- OpenTelemetry ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exporter():
    """The SDK's in-memory exporter behind the process's tracer provider (installed once:
    OpenTelemetry allows one global provider per process)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture(scope="module")
def otel_url(exporter) -> Iterator[str]:
    """The app with EDGE_OTEL=true, served by uvicorn in a thread of this process (so its spans
    reach the in-memory exporter) on a loopback port, over real HTTP."""
    import uvicorn

    from service.app import create_app
    from service.config import Settings

    from .support import BUNDLED_MODELS, free_port

    app = create_app(Settings(model_dir=BUNDLED_MODELS, otel=True, log_level="WARNING"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def _spans_of(exporter, trace_id: str) -> list:
    """The finished spans of ``trace_id``, once its SERVER span has ended (that happens after
    the response went out, so it may come a moment after the client has the answer)."""
    from opentelemetry.trace import SpanKind

    deadline = time.monotonic() + 10
    while True:
        spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
        if any(s.kind == SpanKind.SERVER for s in spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.02)


def test_spans_for_the_request_and_its_stages(exporter, otel_url: str, digit_png: bytes) -> None:
    from opentelemetry.trace import SpanKind, StatusCode

    trace_id = "0af7651916cd43dd8448eb211c80319c"
    response = httpx.post(
        f"{otel_url}/models/mnist/predict",
        content=digit_png,
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        timeout=30,
    )
    assert response.status_code == 200
    spans = {s.name: s for s in _spans_of(exporter, trace_id)}
    # One SERVER span (FastAPI's own request tracing is off under EDGE_OTEL) and its stages.
    assert sorted(s.name for s in _spans_of(exporter, trace_id)) == sorted(
        ["POST /models/{name}/predict", "decode", "preprocess", "inference"]
    )
    root = spans["POST /models/{name}/predict"]
    assert root.kind == SpanKind.SERVER and root.parent.span_id == int("b7ad6b7169203331", 16)
    assert root.parent.is_remote
    assert dict(root.attributes) == {
        "http.request.method": "POST",
        "url.path": "/models/mnist/predict",
        "http.route": "/models/{name}/predict",
        "http.response.status_code": 200,
        "edge_infer.model.name": "mnist",
        "edge_infer.model.version": "1.0.0",
        "edge_infer.batch_size": 1,
    }
    assert root.status.status_code == StatusCode.UNSET
    for name in ("decode", "preprocess", "inference"):
        assert spans[name].parent.span_id == root.context.span_id, name
        assert root.start_time <= spans[name].start_time <= spans[name].end_time <= root.end_time
    assert spans["inference"].attributes["edge_infer.batch_size"] == 1
    # The response names the exported request span.
    assert response.headers["traceparent"] == f"00-{trace_id}-{root.context.span_id:016x}-01"


def test_batch_request_span_carries_its_batch_size(exporter, otel_url: str, digit_png: bytes) -> None:
    trace_id = "1af7651916cd43dd8448eb211c80319c"
    files = [("files", (f"{i}.png", digit_png, "image/png")) for i in range(3)]
    response = httpx.post(
        f"{otel_url}/models/mnist/predict/batch",
        files=files,
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    spans = _spans_of(exporter, trace_id)
    root = next(s for s in spans if s.name == "POST /models/{name}/predict/batch")
    assert root.attributes["edge_infer.batch_size"] == 3
    assert sorted(s.name for s in spans if s.parent and s.parent.span_id == root.context.span_id) == [
        *["decode"] * 3,
        "inference",
        *["preprocess"] * 3,
    ]


def test_unknown_model_span_is_a_client_error_not_a_server_error(exporter, otel_url: str) -> None:
    from opentelemetry.trace import StatusCode

    trace_id = "2af7651916cd43dd8448eb211c80319c"
    response = httpx.post(
        f"{otel_url}/models/nope/predict",
        content=b"x",
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        timeout=30,
    )
    assert response.status_code == 404
    (root,) = _spans_of(exporter, trace_id)
    assert root.attributes["http.response.status_code"] == 404
    assert "edge_infer.model.name" not in root.attributes
    assert root.status.status_code == StatusCode.UNSET
