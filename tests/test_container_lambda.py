"""infra/Dockerfile.lambda (target ``ric``) built with podman on Debian bookworm and run as
Lambda runs it: awslambdaric inside the container long-polls a Lambda Runtime API (served on
loopback by the test, ``tests.harness.runtime_api``) and answers real API Gateway events carrying
base64 multipart uploads of real MNIST digits. Non-root, read-only root filesystem.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from infra import containers
from tests.harness.lambda_events import http_api_v2_event, multipart, rest_api_v1_event
from tests.harness.runtime_api import RuntimeAPI, serve_runtime_api

from .package_support import require_tools
from .support import BUNDLED_MODELS, encode, mnist_test_digits

TAG = "localhost/edge-infer-lambda:pytest"
NAME = "edge-infer-lambda-pytest"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_tools(containers.missing_tools(), containers.ENABLE_HINT, "the container tests")
    # The same build directory as tests/test_container.py: one package build serves both images.
    context = containers.debian_package(
        tmp_path_factory.getbasetemp() / "container-build", [BUNDLED_MODELS / "mnist"]
    )
    tag = containers.lambda_image(context, TAG)
    yield tag
    containers.podman("rmi", "-f", tag, check=False)


@pytest.fixture(scope="module")
def runtime(image: str) -> Iterator[RuntimeAPI]:
    containers.podman("rm", "-f", NAME, check=False)
    with serve_runtime_api() as (api, address):
        command = containers.run_command(
            "-d",
            "--name",
            NAME,
            "--read-only",
            "--network",
            "host",
            "-e",
            f"AWS_LAMBDA_RUNTIME_API={address}",
            "-e",
            "AWS_LAMBDA_FUNCTION_NAME=edge-infer",
            "-e",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024",
            "-e",
            "AWS_REGION=us-east-1",
            image,
        )
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        try:
            yield api
        finally:
            logs = containers.podman("logs", NAME, check=False)
            containers.podman("rm", "-f", "-t", "0", NAME, check=False)
            if api.init_errors:
                print(logs.stdout[-3000:], logs.stderr[-3000:])


def test_image_runs_awslambdaric_as_non_root(image: str) -> None:
    config = json.loads(containers.podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python3", "-m", "awslambdaric"]
    assert config["Cmd"] == ["service.lambda_handler.handler"]


def test_http_api_and_rest_api_events_through_the_container(runtime: RuntimeAPI) -> None:
    digits, labels = mnist_test_digits(2)
    for i, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        content_type, body = multipart(encode(digit, "PNG"))
        make = http_api_v2_event if i % 2 == 0 else rest_api_v1_event
        kind, payload = runtime.invoke(
            make("/models/mnist/predict", body, content_type, query="top_k=3"), timeout=120
        )
        assert kind == "response", payload
        assert payload["statusCode"] == 200, payload
        prediction = json.loads(payload["body"])
        assert prediction["model"] == "mnist" and len(prediction["top_k"]) == 3
        if i == 0:  # the first MNIST test digit (a 7), which the model reads right
            assert prediction["prediction"] == str(int(label))
    assert runtime.init_errors == []
    running = containers.podman("inspect", "--format", "{{.State.Running}}", NAME).stdout.strip()
    assert running == "true"


def test_bad_input_is_a_4xx_not_a_function_error(runtime: RuntimeAPI) -> None:
    kind, payload = runtime.invoke(http_api_v2_event("/models/nope/predict", b"x", "image/png"), timeout=60)
    assert kind == "response" and payload["statusCode"] == 404
    assert "nope" in json.loads(payload["body"])["detail"]
    pdf_type, pdf = multipart(b"%PDF-1.7\n%%EOF\n", filename="scan.pdf")
    kind, payload = runtime.invoke(http_api_v2_event("/models/mnist/predict", pdf, pdf_type), timeout=60)
    assert kind == "response" and payload["statusCode"] == 415
