"""Security: API keys, CORS, request ids, structured logs, and no internals in errors.

All over real HTTP to real uvicorn servers started with the settings under test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from . import support
from .support import encode, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(1)
PNG = encode(DIGITS[0])
KEYS = ("k-8f2b6c1e-first", "k-0d9a77e3-second")
MISSING = "missing API key: send it in the X-API-Key header"


@pytest.fixture(scope="module")
def keyed() -> Iterator[support.RunningServer]:
    with running_server(
        EDGE_API_KEYS=",".join(KEYS),
        EDGE_CORS_ORIGINS="https://app.example.com, https://admin.example.com",
    ) as server:
        yield server


# --- API keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_is_accepted(keyed: support.RunningServer, key: str) -> None:
    response = httpx.post(f"{keyed.url}/predict", content=PNG, headers={"X-API-Key": key})
    assert response.status_code == 200
    assert response.json()["prediction"] == str(LABELS[0])


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, MISSING),
        ({"X-API-Key": ""}, MISSING),
        ({"X-API-Key": "wrong"}, "invalid API key"),
        ({"X-API-Key": KEYS[0][:-1]}, "invalid API key"),  # a prefix of a real key
        ({"X-API-Key": KEYS[0] + "x"}, "invalid API key"),
        ({"X-API-Key": ",".join(KEYS)}, "invalid API key"),  # the raw env value
        ({"Authorization": f"Bearer {KEYS[0]}"}, MISSING),  # wrong header
    ],
)
def test_missing_or_wrong_key_is_401(keyed: support.RunningServer, headers: dict, detail: str) -> None:
    for method, path in (
        ("POST", "/predict"),
        ("POST", "/models/mnist/predict"),
        ("GET", "/models"),
        ("GET", "/models/mnist"),
    ):
        response = httpx.request(
            method, f"{keyed.url}{path}", content=PNG if method == "POST" else None, headers=headers
        )
        assert response.status_code == 401, (path, response.text)
        assert response.json() == {"detail": detail}
        assert KEYS[0] not in response.text and KEYS[1] not in response.text


def test_key_is_checked_before_the_model_name_is_revealed(keyed: support.RunningServer) -> None:
    response = httpx.post(f"{keyed.url}/models/secret-model/predict", content=PNG)
    assert response.status_code == 401


def test_health_and_metrics_stay_open_for_probes_and_scrapers(keyed: support.RunningServer) -> None:
    assert httpx.get(f"{keyed.url}/health").status_code == 200
    metrics = httpx.get(f"{keyed.url}/metrics")
    assert metrics.status_code == 200
    for key in KEYS:
        assert key not in metrics.text


def test_openapi_declares_the_api_key_scheme(keyed: support.RunningServer) -> None:
    document = httpx.get(f"{keyed.url}/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "APIKeyHeader": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "One of the keys set in EDGE_API_KEYS.",
        }
    }
    assert document["paths"]["/predict"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "401" in document["paths"]["/predict"]["post"]["responses"]
    assert "security" not in document["paths"]["/health"]["get"]


def test_without_keys_no_authentication_is_asked(http: httpx.Client) -> None:
    assert http.post("/predict", content=PNG).status_code == 200
    assert "securitySchemes" not in http.get("/openapi.json").json().get("components", {})


def _access_records(server: support.RunningServer, request_ids: set[str]) -> list[dict]:
    """Every JSON log line, once the access lines of ``request_ids`` are written.

    The access line is written just after the response is sent, so the client can be faster.
    """
    deadline = time.monotonic() + 10
    while True:
        # Python's logging is all JSON; native libraries (ONNX Runtime) may print their own.
        records = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
        logged = {r.get("request_id") for r in records if r["logger"] == "service.access"}
        if request_ids <= logged or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_keys_never_reach_the_logs(keyed: support.RunningServer) -> None:
    httpx.post(f"{keyed.url}/predict", content=PNG, headers={"X-API-Key": KEYS[0], "X-Request-ID": "key-ok"})
    httpx.post(
        f"{keyed.url}/predict", content=PNG, headers={"X-API-Key": "wrong-key", "X-Request-ID": "key-bad"}
    )
    assert len(_access_records(keyed, {"key-ok", "key-bad"})) > 2
    log = keyed.log_path.read_text()
    assert KEYS[0] not in log and KEYS[1] not in log and "wrong-key" not in log


def test_custom_key_header() -> None:
    with running_server(EDGE_API_KEYS="s3cret", EDGE_API_KEY_HEADER="X-Edge-Token") as server:
        assert (
            httpx.post(f"{server.url}/predict", content=PNG, headers={"X-Edge-Token": "s3cret"}).status_code
            == 200
        )
        refused = httpx.post(f"{server.url}/predict", content=PNG, headers={"X-API-Key": "s3cret"})
        assert refused.json() == {"detail": "missing API key: send it in the X-Edge-Token header"}


def test_key_matching_is_exact() -> None:
    from service.middleware.auth import _digest, key_matches

    digests = tuple(_digest(k) for k in KEYS)
    assert key_matches(KEYS[1], digests)
    assert not key_matches(KEYS[1].upper(), digests)
    assert not key_matches("", digests)
    assert not key_matches(KEYS[1] + "\x00", digests)


# --- CORS ----------------------------------------------------------------------------------


def test_cors_is_off_by_default(http: httpx.Client) -> None:
    response = http.post("/predict", content=PNG, headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = http.options(
        "/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


def test_cors_allows_only_configured_origins(keyed: support.RunningServer) -> None:
    allowed = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type",
    }
    preflight = httpx.options(f"{keyed.url}/predict", headers=allowed)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()

    denied = httpx.options(f"{keyed.url}/predict", headers={**allowed, "Origin": "https://evil.example"})
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers

    simple = httpx.post(
        f"{keyed.url}/predict",
        content=PNG,
        headers={"Origin": "https://admin.example.com", "X-API-Key": KEYS[0]},
    )
    assert simple.headers["access-control-allow-origin"] == "https://admin.example.com"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


# --- request ids and structured logs -------------------------------------------------------


def test_every_response_has_a_request_id(http: httpx.Client) -> None:
    seen = set()
    for method, path in (
        ("GET", "/health"),
        ("GET", "/models"),
        ("GET", "/nope"),
        ("POST", "/predict"),
        ("DELETE", "/predict"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ):
        response = http.request(method, path)
        request_id = response.headers["x-request-id"]
        assert len(request_id) == 32 and request_id not in seen
        seen.add(request_id)


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("trace-abc.123:x_y-z", True),
        ("a" * 128, True),
        ("a" * 129, False),  # too long
        ("spaces are not allowed", False),
        ('{"level":"CRITICAL"}', False),  # would forge log fields if echoed into a line
        ("", False),
    ],
)
def test_caller_request_id_is_echoed_only_when_safe(http: httpx.Client, sent: str, echoed: bool) -> None:
    response = http.get("/health", headers={"X-Request-ID": sent})
    assert (response.headers["x-request-id"] == sent) is echoed


def test_log_lines_are_json_with_request_id_and_latency() -> None:
    with running_server() as server:
        ok = httpx.post(f"{server.url}/predict", content=PNG, headers={"X-Request-ID": "req-ok-1"})
        bad = httpx.post(
            f"{server.url}/models/mnist/predict",
            content=b"not an image",
            headers={"X-Request-ID": "req-bad-1"},
        )
        assert ok.status_code == 200 and bad.status_code == 415
        records = _access_records(server, {"req-ok-1", "req-bad-1"})
    access = {r["request_id"]: r for r in records if r["logger"] == "service.access"}
    assert access["req-ok-1"]["status"] == 200
    assert access["req-ok-1"]["route"] == "/predict"
    assert access["req-ok-1"]["model"] == "mnist"
    assert access["req-ok-1"]["duration_ms"] > 0
    assert 0 < access["req-ok-1"]["inference_ms"] <= access["req-ok-1"]["duration_ms"]
    assert access["req-bad-1"]["status"] == 415
    assert access["req-bad-1"]["route"] == "/models/{name}/predict"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
    assert any(r["logger"].startswith("uvicorn") for r in records), "uvicorn's lines are JSON too"


# --- no internals in error responses -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("POST", "/predict", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64),
        ("POST", "/models/..%2F..%2Fetc%2Fpasswd/predict", PNG),
        ("POST", "/models/%00/predict", PNG),
        ("GET", "/models/mnist%2F..%2F..", None),
        ("POST", "/predict?top_k=%00", PNG),
    ],
)
def test_errors_carry_no_stack_traces_or_paths(http: httpx.Client, method: str, path: str, content) -> None:
    response = http.request(method, path, content=content)
    assert 400 <= response.status_code < 500
    body = response.text
    for leak in ("Traceback", str(support.PROJECT_ROOT), "site-packages", ".py", "models_onnx"):
        assert leak not in body, body


def test_unexpected_error_is_a_json_500_with_request_id_and_no_trace(capsys: pytest.CaptureFixture) -> None:
    # The one place a route is added for the test: nothing in the service raises on purpose,
    # and the middleware's last-resort handler must still be right when something does.
    import asyncio

    from service.app import create_app
    from service.config import Settings
    from service.engine.registry import ModelRegistry

    app = create_app(Settings(), ModelRegistry())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal state at /srv/models/x.onnx")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom", headers={"X-Request-ID": "boom-1"})

    response = asyncio.run(call())
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert response.headers["x-request-id"] == "boom-1"
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    errors = [r for r in logged if r.get("request_id") == "boom-1" and r["level"] == "ERROR"]
    assert any("secret internal state" in r.get("exception", "") for r in errors), "trace goes to the log"
    assert any(r.get("status") == 500 for r in errors), "the access line records the 500"


@pytest.mark.parametrize("kind", ["http_api_v2", "rest_api_v1"])
def test_lambda_responses_carry_the_api_gateway_request_id(kind: str, lambda_handler) -> None:
    # On Lambda the id API Gateway already logs is reused, so its logs and ours join up.
    from tests.harness.lambda_events import LambdaContext, http_api_v2_event, multipart, rest_api_v1_event

    handler = lambda_handler
    make = http_api_v2_event if kind == "http_api_v2" else rest_api_v1_event
    content_type, body = multipart(PNG)
    event = make("/predict", body, content_type)
    response = handler(event, LambdaContext())
    assert response["statusCode"] == 200
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["x-request-id"] == event["requestContext"]["requestId"]
