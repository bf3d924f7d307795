"""CloudWatch Embedded Metric Format lines from the Lambda handler, checked against the
specification: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

The handler runs in a fresh interpreter set up as a Lambda environment (function name and
version in the environment, so EMF is on by default) and answers real API Gateway events: a
prediction, a batch, a bad image (415), an unknown model (404), a model that failed its sha256
at load (503) and /health. Every stdout line with ``_aws`` must be valid EMF, one per request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest

from .support import BUNDLED_MODELS, MNIST_NPZ, PROJECT_ROOT, require_shared_data

UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second",
    "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second",
    "Count/Second", "None",
]  # fmt: skip
# The specification's structure: root object with _aws; MetricDirective = Namespace,
# Dimensions (array of DimensionSets, each at most 30 keys), Metrics (at most 100 definitions).
EMF_SCHEMA = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {"type": "array", "items": {"$ref": "#/$defs/directive"}},
            },
        }
    },
    "$defs": {
        "directive": {
            "type": "object",
            "required": ["Namespace", "Dimensions", "Metrics"],
            "properties": {
                "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                "Dimensions": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "maxItems": 30,
                        "items": {"type": "string", "minLength": 1, "maxLength": 250},
                    },
                },
                "Metrics": {
                    "type": "array",
                    "maxItems": 100,
                    "items": {
                        "type": "object",
                        "required": ["Name"],
                        "properties": {
                            "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Unit": {"enum": UNITS},
                            "StorageResolution": {"enum": [1, 60]},
                        },
                    },
                },
            },
        }
    },
}

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.harness.lambda_events import LambdaContext, http_api_v2_event, multipart
from tests.support import encode, mnist_test_digits
from service.lambda_handler import handler

digit = encode(mnist_test_digits(1)[0][0])
content_type, body = multipart(digit)
import httpx
parts = [("files", ("a.png", digit, "image/png"))] * 2
batch = httpx.Request("POST", "https://example.invalid/", files=parts)
batch_type, batch_body = batch.headers["content-type"], batch.read()
events = [
    http_api_v2_event("/models/mnist/predict", body, content_type),
    http_api_v2_event("/models/mnist/predict/batch", batch_body, batch_type),
    http_api_v2_event("/models/mnist/predict", b"not an image", "application/octet-stream"),
    http_api_v2_event("/models/nope/predict", b"x", "application/octet-stream"),
    http_api_v2_event("/models/broken/predict", body, content_type),
    http_api_v2_event("/health", b"", "application/json", method="GET"),
]
statuses = [handler(event, LambdaContext())["statusCode"] for event in events]
print(json.dumps({"statuses": statuses}))
"""


def validate_emf(line: dict) -> None:
    """Raise if ``line`` is not valid EMF: the schema, then the rules the schema cannot say --
    every dimension a string member, every metric a number (or <= 100 numbers) member."""
    jsonschema.validate(line, EMF_SCHEMA)
    for directive in line["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for name in dimension_set:
                assert isinstance(line.get(name), str), f"dimension {name} has no string member"
        names = [m["Name"] for m in directive["Metrics"]]
        assert len(names) == len(set(names)), names
        for name in names:
            value = line.get(name)
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100, name
            assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values), name


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[int], list[dict]]:
    require_shared_data(MNIST_NPZ)  # the child sends a real MNIST digit
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(BUNDLED_MODELS / "mnist", models / "mnist")
    broken = models / "broken"
    shutil.copytree(BUNDLED_MODELS / "mnist", broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest.update(name="broken", sha256="0" * 64)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    env = {
        **os.environ,
        "EDGE_MODEL_DIR": str(models),
        "AWS_LAMBDA_FUNCTION_NAME": "edge-infer-test",
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
        "EDGE_LOG_LEVEL": "WARNING",
    }
    env.pop("EDGE_EMF", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(PROJECT_ROOT)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    statuses = lines[-1]["statuses"]
    return statuses, [line for line in lines if "_aws" in line]


def test_one_valid_emf_line_per_request(emitted) -> None:
    statuses, lines = emitted
    assert statuses == [200, 200, 415, 404, 503, 200]
    assert len(lines) == len(statuses)
    for line in lines:
        validate_emf(line)
    assert [line["Status"] for line in lines] == statuses


def test_emf_carries_latency_per_stage_model_and_status_class(emitted) -> None:
    _, lines = emitted
    single, batch, bad, unknown, broken, health = lines
    for line in lines:
        assert (line["Service"], line["FunctionVersion"], line["Requests"]) == ("edge-infer-test", "7", 1)
        assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "FunctionVersion"]]
        assert line["RequestLatency"] > 0
    assert (single["Model"], single["StatusClass"], single["Route"]) == (
        "mnist",
        "2xx",
        "/models/{name}/predict",
    )
    per_model = single["_aws"]["CloudWatchMetrics"][1]
    assert per_model["Dimensions"] == [["Service", "Model", "StatusClass"]]
    assert {m["Name"] for m in per_model["Metrics"]} == {
        "RequestLatency",
        "DecodeLatency",
        "PreprocessLatency",
        "InferenceLatency",
    }
    assert all(m["Unit"] == "Milliseconds" for m in per_model["Metrics"])
    # The stages happen inside the request: their sum cannot exceed its latency.
    stages = single["DecodeLatency"] + single["PreprocessLatency"] + single["InferenceLatency"]
    assert 0 < stages <= single["RequestLatency"]
    assert batch["BatchSize"] == 2
    # A bad image: decoded (and failed) but never reached inference.
    assert (bad["StatusClass"], bad["Errors4xx"], bad["Errors5xx"]) == ("4xx", 1, 0)
    assert "InferenceLatency" not in bad
    # No known model: only the per-version directive.
    assert "Model" not in unknown and len(unknown["_aws"]["CloudWatchMetrics"]) == 1
    assert (broken["Model"], broken["StatusClass"], broken["Errors5xx"]) == ("broken", "5xx", 1)
    assert "Model" not in health and health["Errors4xx"] == health["Errors5xx"] == 0


def test_validator_rejects_what_the_specification_forbids() -> None:
    good = {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["D"]], "Metrics": [{"Name": "M"}]}],
        },
        "D": "x",
        "M": 1.5,
    }
    validate_emf(good)
    for broken in (
        {**good, "D": 3},  # dimension value not a string
        {**good, "M": "fast"},  # metric value not a number
        {k: v for k, v in good.items() if k != "M"},  # metric without its member
        {**good, "_aws": {**good["_aws"], "Timestamp": "now"}},
    ):
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            validate_emf(broken)
    many = {**good, "_aws": {**good["_aws"], "CloudWatchMetrics": [
        {"Namespace": "n", "Dimensions": [[f"D{i}" for i in range(31)]], "Metrics": []}
    ]}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(many, EMF_SCHEMA)


def test_emf_is_off_outside_lambda_by_default() -> None:
    from service.config import Settings

    assert Settings.from_env({}).emf is ("AWS_LAMBDA_FUNCTION_NAME" in os.environ)
    assert Settings.from_env({"EDGE_EMF": "true"}).emf is True
