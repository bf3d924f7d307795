"""Prometheus metrics at /metrics: per-model request counts, errors and latency histograms.

A fresh real server per module, so counts are exact; the exposition is parsed with
prometheus-client's own parser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from . import support
from .support import encode, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(6)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted label items): value} for every sample in the exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.RunningServer]:
    # Only the digit model, so the exact label sets below do not depend on what else is bundled.
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(support.BUNDLED_MODELS / "mnist", models / "mnist")
    with running_server(models) as running:
        yield running


@pytest.fixture(scope="module")
def scraped(server: support.RunningServer) -> dict:
    """Send a known mix of requests, then scrape once."""
    with httpx.Client(base_url=server.url) as client:
        for digit in DIGITS:
            assert client.post("/predict", content=encode(digit)).status_code == 200
        for digit in DIGITS[:2]:
            assert client.post("/models/mnist/predict", content=encode(digit)).status_code == 200
        assert client.post("/predict", content=b"not an image").status_code == 415
        assert client.post("/predict", content=b"").status_code == 400
        assert client.post("/predict", params={"top_k": 0}, content=encode(DIGITS[0])).status_code == 422
        for i in range(25):  # probing random model names and paths must not add series
            assert client.post(f"/models/probe-{i}/predict", content=b"x").status_code == 404
            assert client.get(f"/admin/{i}.php").status_code == 404
        assert client.get("/health").status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {"text": response.text, "samples": _samples(response.text)}


def test_per_model_request_counts(scraped: dict) -> None:
    s = scraped["samples"]
    assert _value(s, "edge_model_requests_total", model="mnist", status="200") == len(DIGITS) + 2
    assert _value(s, "edge_model_requests_total", model="mnist", status="415") == 1
    assert _value(s, "edge_model_requests_total", model="mnist", status="400") == 1


def test_per_model_errors(scraped: dict) -> None:
    s = scraped["samples"]
    # 415 + 400 reached the model; the 422 (top_k) is refused before the handler runs.
    assert _value(s, "edge_model_errors_total", model="mnist", kind="client") == 2
    assert _value(s, "edge_model_errors_total", model="mnist", kind="server") == 0


def test_latency_histograms(scraped: dict) -> None:
    s = scraped["samples"]
    served = len(DIGITS) + 2
    assert _value(s, "edge_model_inference_duration_seconds_count", model="mnist") == served
    assert _value(s, "edge_model_request_duration_seconds_count", model="mnist") == served + 2
    total = _value(s, "edge_model_request_duration_seconds_sum", model="mnist")
    inference = _value(s, "edge_model_inference_duration_seconds_sum", model="mnist")
    assert 0 < inference < total
    assert _value(s, "edge_model_inference_duration_seconds_bucket", model="mnist", le="+Inf") == served
    # Buckets are cumulative.
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in s.items()
        if name == "edge_model_request_duration_seconds_bucket"
    )
    counts = [value for _, value in buckets]
    assert counts == sorted(counts)


def test_http_metrics_use_route_templates(scraped: dict) -> None:
    s = scraped["samples"]
    route = "/models/{name}/predict"
    assert _value(s, "edge_http_requests_total", method="POST", route=route, status="404") == 25
    assert _value(s, "edge_http_requests_total", method="POST", route=route, status="200") == 2
    assert _value(s, "edge_http_requests_total", method="GET", route="(unmatched)", status="404") == 25
    assert _value(s, "edge_http_requests_total", method="POST", route="/predict", status="422") == 1


def test_probing_does_not_grow_label_sets(scraped: dict) -> None:
    text = scraped["text"]
    assert "probe-" not in text and ".php" not in text
    models = {dict(labels).get("model") for (_, labels) in scraped["samples"] if dict(labels).get("model")}
    assert models == {"mnist"}


def test_readiness_and_process_metrics(scraped: dict) -> None:
    s = scraped["samples"]
    assert _value(s, "edge_model_ready", model="mnist") == 1
    assert _value(s, "process_resident_memory_bytes") > 10 * 2**20
    assert _value(s, "edge_http_requests_in_progress") == 1  # the scrape itself


def test_openmetrics_on_request(server: support.RunningServer) -> None:
    response = httpx.get(f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_metrics_can_be_switched_off() -> None:
    with running_server(EDGE_METRICS_ENABLED="false") as running:
        assert httpx.get(f"{running.url}/metrics").status_code == 404
        assert httpx.post(f"{running.url}/predict", content=encode(DIGITS[0])).status_code == 200


def test_metrics_are_off_by_default_on_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.config import Settings

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert Settings().metrics_enabled is True
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "edge-infer")  # set by the Lambda runtime
    assert Settings().metrics_enabled is False
    assert Settings(metrics_enabled=True).metrics_enabled is True
