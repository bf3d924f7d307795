"""The package runs under the real Lambda runtime interface client, as a container image does.

The AWS Lambda base image starts ``python -m awslambdaric service.lambda_handler.handler`` in
``/var/task``; awslambdaric long-polls the Lambda Runtime API for events and posts the results
back (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html). Here the Runtime API is a
small HTTP server on loopback written below, awslambdaric is the locked release installed for
the runtime's Python, and the task root is the extracted zip: real HTTP both ways.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.servers import stop

from .lambda_events import http_api_v2_event, multipart
from .package_support import UnpackedPackage, install_runtime_interface_client, unpacked_package
from .support import encode, mnist_test_digits

API_PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:edge-infer"


@dataclass
class RuntimeAPI:
    """The Lambda Runtime API's invocation endpoints, backed by queues.

    ``GET /invocation/next`` blocks until an event is queued, like the real service does
    between invocations; results and errors are recorded per request id.
    """

    pending: queue.Queue = field(default_factory=queue.Queue)
    results: dict[str, queue.Queue] = field(default_factory=dict)
    init_errors: list[dict] = field(default_factory=list)

    def invoke(self, event: dict, timeout: float = 60.0) -> tuple[str, dict]:
        """Queue one event; wait for ("response" | "error", payload)."""
        request_id = str(uuid.uuid4())
        self.results[request_id] = queue.Queue()
        self.pending.put((request_id, json.dumps(event).encode()))
        return self.results[request_id].get(timeout=timeout)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the client keeps one connection alive

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path != f"{API_PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorMessage": "unknown path"}')
                request_id, body = api.pending.get()
                deadline_ms = int((time.time() + 30) * 1000)
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                parts = self.path.removeprefix(API_PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append(payload)
                elif len(parts) == 3 and parts[0] == "invocation" and parts[1] in api.results:
                    api.results[parts[1]].put((parts[2], payload))
                else:
                    return self._reply(404, b'{"errorMessage": "unknown path"}')
                self._reply(202, b'{"status": "OK"}')

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


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
    api = RuntimeAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler_class())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address
    log_path = tmp_path_factory.getbasetemp() / "awslambdaric.log"
    env = {
        # What the base image sets: the runtime's own modules on PYTHONPATH, the task root as cwd.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(var_runtime),
        "LAMBDA_TASK_ROOT": str(package.task_root),
        "AWS_LAMBDA_RUNTIME_API": f"{host}:{port}",
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
        server.shutdown()
        server.server_close()


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
