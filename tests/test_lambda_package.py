"""The Lambda zip is complete: extracted alone, in a fresh interpreter, it serves real events.

The zip is built by ``infra.package`` (manylinux wheels for the Lambda runtime, trimmed, with
the bundled digit model), extracted like Lambda extracts it into ``/var/task``, and imported by a
Python that sees nothing else (``-I -S``: no site-packages, no PYTHON* variables). The handler is
invoked with API Gateway HTTP API (2.0) and REST API (1.0) events carrying base64 multipart
uploads of real MNIST digits, and must answer exactly as the uvicorn server does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from infra.package import LAMBDA_UNZIPPED_LIMIT
from infra.trim import RULES
from tests.harness.lambda_events import http_api_v2_event, multipart, rest_api_v1_event

from .package_support import UnpackedPackage, run_isolated, unpacked_package
from .support import encode, mnist_test_digits

# Runs inside the fresh interpreter: argv = [events.json, result.json]; cwd = the extracted
# package. The result goes to a file: stdout carries the service's JSON log lines.
DRIVER = r"""
import json, os, sys
task_root = os.getcwd()
sys.path.insert(0, task_root)
from service.lambda_handler import handler

class Context:  # the attributes of the Lambda Python context object
    function_name = "edge-infer"; memory_limit_in_mb = 1024; aws_request_id = "req-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:edge-infer"
    def get_remaining_time_in_millis(self): return 30000

with open(sys.argv[1]) as f:
    events = json.load(f)
responses = [handler(event, Context()) for event in events]
stdlib = os.path.dirname(os.__file__)
outside = sorted(
    name for name, m in list(sys.modules.items())
    if getattr(m, "__file__", None)
    and not m.__file__.startswith((task_root, stdlib, sys.base_prefix))
)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "onnx", "tf2onnx"})
with open(sys.argv[2], "w") as f:
    json.dump({"responses": responses, "outside": outside, "heavy": heavy, "sys_path": sys.path}, f)
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> UnpackedPackage:
    return unpacked_package(tmp_path_factory.getbasetemp() / "lambda-package")


def invoke(package: UnpackedPackage, events: list[dict], tmp_path: Path) -> dict:
    events_file = tmp_path / "events.json"
    events_file.write_text(json.dumps(events))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(package.task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
        "AWS_REGION": "us-east-1",
    }
    result_file = tmp_path / "result.json"
    result = run_isolated(
        package.python, DRIVER, str(events_file), str(result_file), cwd=package.task_root, env=env
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result_file.read_text())


def test_size_report_is_within_lambda_limit(package: UnpackedPackage) -> None:
    report = package.build.report
    unzipped = sum(p.stat().st_size for p in package.task_root.rglob("*") if p.is_file())
    assert unzipped == report["unzipped_bytes"]
    assert report["unzipped_bytes"] <= LAMBDA_UNZIPPED_LIMIT
    assert report["zipped_bytes"] == package.build.zip_path.stat().st_size
    assert report["models"].keys() == {"mnist"}


def test_package_holds_service_models_and_compiled_modules_but_no_trimmed_files(
    package: UnpackedPackage,
) -> None:
    root = package.task_root
    assert (root / "service" / "lambda_handler.py").is_file()
    assert (root / "models_onnx" / "mnist" / "manifest.json").is_file()
    for dropped in ("onnxruntime/tools", "onnxruntime/quantization", "numpy/f2py", "bin"):
        assert not (root / dropped).exists(), dropped
    assert not list(root.glob("*/tests")) and not list(root.glob("**/*.pyi"))
    # .pyc for the runtime's version, so a read-only /var/task never compiles at cold start.
    tag = "cpython-" + package.python.version.replace(".", "")
    assert list((root / "service" / "__pycache__").glob(f"lambda_handler.{tag}.pyc"))
    assert {rule.pattern for rule in RULES} == package.build.report["trimmed_bytes"].keys()
    # The model ships with ONNX Runtime's extended optimizations applied, same outputs.
    optimization = package.build.report["model_optimization"]["mnist"]
    assert optimization["optimized"] is True and optimization["max_output_delta"] <= 1e-5
    manifest = json.loads((root / "models_onnx" / "mnist" / "manifest.json").read_text())
    assert (
        manifest["file"].endswith(".ort-opt.onnx")
        and (root / "models_onnx" / "mnist" / manifest["file"]).is_file()
    )


def test_http_api_and_rest_api_events_predict_like_the_server(
    package: UnpackedPackage, http: httpx.Client, tmp_path: Path
) -> None:
    digits, labels = mnist_test_digits(3)
    uploads = [encode(d, "PNG") for d in digits]
    events = []
    for i, image in enumerate(uploads):
        content_type, body = multipart(image)
        make = http_api_v2_event if i % 2 == 0 else rest_api_v1_event
        events.append(make("/models/mnist/predict", body, content_type, query="top_k=3"))
    content_type, body = multipart(uploads[0])
    events.append(http_api_v2_event("/predict", body, content_type))

    out = invoke(package, events, tmp_path)

    assert out["heavy"] == [] and out["outside"] == [], out
    assert not [p for p in out["sys_path"] if "site-packages" in p]
    responses = out["responses"]
    for response, image in zip(responses, [*uploads, uploads[0]], strict=True):
        assert response["statusCode"] == 200, response
        assert response["isBase64Encoded"] is False
        served = http.post(
            "/models/mnist/predict", params={"top_k": 3}, files={"file": ("d.png", image, "image/png")}
        )
        assert served.status_code == 200
        lambda_body, server_body = json.loads(response["body"]), served.json()
        assert lambda_body["prediction"] == server_body["prediction"]
        assert [r["class_index"] for r in lambda_body["top_k"]] == [
            r["class_index"] for r in server_body["top_k"]
        ]
        assert [r["probability"] for r in lambda_body["top_k"]] == pytest.approx(
            [r["probability"] for r in server_body["top_k"]], rel=1e-5
        )
        assert len(lambda_body["top_k"]) == 3
    # A trained digit model reads the first MNIST test digit (a 7) right.
    assert json.loads(responses[0]["body"])["prediction"] == str(int(labels[0]))


def test_bad_upload_health_and_openapi_through_the_package(package: UnpackedPackage, tmp_path: Path) -> None:
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"
    content_type, body = multipart(pdf, filename="scan.pdf")
    events = [
        http_api_v2_event("/models/mnist/predict", body, content_type),
        http_api_v2_event("/health", b"", "application/json", method="GET"),
        # Schema generation walks every route and model: an import the trim removed would show.
        http_api_v2_event("/openapi.json", b"", "application/json", method="GET"),
    ]
    bad, health, openapi = invoke(package, events, tmp_path)["responses"]
    assert bad["statusCode"] == 415
    assert "PDF" in json.loads(bad["body"])["detail"]
    assert health["statusCode"] == 200
    assert "mnist" in json.loads(health["body"])["models"]
    assert openapi["statusCode"] == 200
    assert "/models/{name}/predict" in json.loads(openapi["body"])["paths"]
