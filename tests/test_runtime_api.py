"""The package runs under the real Lambda runtime interface client, as a container image does.

The AWS Lambda base image starts ``python -m awslambdaric service.lambda_handler.handler`` in
``/var/task``; awslambdaric long-polls the Lambda Runtime API for events and posts the results
back (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html). Here the Runtime API is a
small HTTP server on loopback (``tests.harness.runtime_api``), awslambdaric is the locked release
installed for the runtime's Python, and the task root is the extracted zip: real HTTP both ways.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.lambda_events import http_api_v2_event, multipart
from tests.harness.runtime_api import RuntimeAPI, serve_runtime_api
from tests.harness.servers import stop

from .package_support import UnpackedPackage, install_runtime_interface_client, unpacked_package
from .support import encode, mnist_test_digits


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> UnpackedPackage:
    return unpacked_package(tmp_path_factory.getbasetemp() / "lambda-package")


@pytest.fixture(scope="module")
def runtime(
    package: UnpackedPackage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RuntimeAPI, subprocess.Popen]]:
    """awslambdaric running the packaged handler against a loopback Runtime API."""
    var_runtime = install_runtime_interface_client(
        tmp_path_factory.getbasetemp() / "var-runtime", package.python
    )
    with serve_runtime_api() as (api, address):
        yield from _run_client(package, var_runtime, api, address, tmp_path_factory)


def _run_client(
    package: UnpackedPackage,
    var_runtime: Path,
    api: RuntimeAPI,
    address: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RuntimeAPI, subprocess.Popen]]:
    log_path = tmp_path_factory.getbasetemp() / "awslambdaric.log"
    env = {
        # What the base image sets: the runtime's own modules on PYTHONPATH, the task root as cwd.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(var_runtime),
        "LAMBDA_TASK_ROOT": str(package.task_root),
        "AWS_LAMBDA_RUNTIME_API": address,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{package.python.version}",
        "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_REGION": "us-east-1",
        "_HANDLER": "service.lambda_handler.handler",
    }
    with log_path.open("wb") as log:
        # -S: no site-packages, so only /var/runtime (PYTHONPATH) and the task root are seen.
        process = subprocess.Popen(
            [package.python.executable, "-S", "-m", "awslambdaric", "service.lambda_handler.handler"],
            cwd=package.task_root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield api, process
    finally:
        stop(process, timeout=10)


def test_runtime_interface_client_serves_multipart_uploads(
    runtime: tuple[RuntimeAPI, subprocess.Popen],
) -> None:
    api, process = runtime
    digits, labels = mnist_test_digits(2)
    for digit, label in zip(digits, labels, strict=True):
        content_type, body = multipart(encode(digit, "PNG"))
        kind, payload = api.invoke(http_api_v2_event("/models/mnist/predict", body, content_type))
        assert kind == "response", payload
        assert payload["statusCode"] == 200, payload
        prediction = json.loads(payload["body"])
        assert prediction["model"] == "mnist"
        assert len(prediction["top_k"]) == 3
        assert prediction["confidence"] == prediction["top_k"][0]["probability"]
        assert prediction["top_k"][0]["probability"] >= prediction["top_k"][1]["probability"]
        if label == labels[0]:  # the first MNIST test digit, a 7, which a trained model reads right
            assert prediction["prediction"] == str(int(label))
    assert api.init_errors == [] and process.poll() is None


def test_runtime_interface_client_returns_4xx_for_bad_input(
    runtime: tuple[RuntimeAPI, subprocess.Popen],
) -> None:
    api, process = runtime
    kind, payload = api.invoke(http_api_v2_event("/models/nope/predict", b"x", "image/png"))
    assert kind == "response"
    assert payload["statusCode"] == 404
    assert "nope" in json.loads(payload["body"])["detail"]
    assert process.poll() is None
