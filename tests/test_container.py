"""infra/Dockerfile built with podman and used as a user would: non-root, read-only root
filesystem, /health and its HEALTHCHECK, a real MNIST digit predicted over HTTP, and SIGTERM
letting an in-flight request finish before the server exits.

The image is built on Debian bookworm (``mmdebstrap`` + ``podman import``, see
``infra.containers``) from a package built for its Python 3.11, with the bundled digit model.
The container shares the host network and binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from infra import containers
from tests.harness.lambda_events import multipart

from .package_support import require_tools
from .support import BUNDLED_MODELS, encode, free_port, mnist_test_digits

TAG = "localhost/edge-infer:pytest"
# What the image may weigh: the Debian base (~214 MB: python3 + apt) + the package and uvicorn
# (~120 MB with the digit model). A regression that copies the zip or caches in grows past it.
MAX_IMAGE_BYTES = 400_000_000


@dataclass
class Container:
    name: str
    url: str

    def logs(self) -> str:
        result = containers.podman("logs", self.name, check=False)
        return result.stdout + result.stderr


def start_container(tag: str, name: str, port: int, *extra: str) -> None:
    command = containers.run_command(
        "-d",
        "--name",
        name,
        "--read-only",  # root filesystem read-only; podman mounts a tmpfs on /tmp
        "--network",
        "host",
        "--health-interval",
        "disable",  # no systemd timers here; the check is run by hand below
        "-e",
        "HOST=127.0.0.1",
        "-e",
        f"PORT={port}",
        "-e",
        "GRACEFUL_SHUTDOWN_SECONDS=20",
        *extra,
        tag,
    )
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


def wait_healthy(url: str, name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = containers.podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout
        if state.strip() == "false":
            break
        time.sleep(0.2)
    logs = containers.podman("logs", name, check=False)
    raise AssertionError(f"container {name} not healthy:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def in_progress(url: str) -> float:
    """The server's edge_http_requests_in_progress gauge (this scrape included)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return float(
        next(
            line.split()[-1]
            for line in text.splitlines()
            if line.startswith("edge_http_requests_in_progress")
        )
    )


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_tools(containers.missing_tools(), containers.ENABLE_HINT, "the container tests")
    context = containers.debian_package(
        tmp_path_factory.getbasetemp() / "container-build", [BUNDLED_MODELS / "mnist"]
    )
    tag = containers.server_image(context, TAG)
    yield tag
    containers.podman("rmi", "-f", tag, check=False)


@pytest.fixture
def container(image: str, request: pytest.FixtureRequest) -> Iterator[Container]:
    name = f"edge-infer-pytest-{request.node.name[:40].replace('[', '-').rstrip(']')}"
    containers.podman("rm", "-f", name, check=False)
    port = free_port()
    start_container(image, name, port)
    running = Container(name, f"http://127.0.0.1:{port}")
    try:
        wait_healthy(running.url, name)
        yield running
    finally:
        containers.podman("rm", "-f", "-t", "0", name, check=False)


def test_image_is_small_non_root_and_has_a_healthcheck(image: str) -> None:
    inspected = json.loads(containers.podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")  # podman puts it on top
    assert healthcheck["Test"][0] == "CMD" and "/health" in " ".join(healthcheck["Test"])
    assert inspected["Size"] <= MAX_IMAGE_BYTES, inspected["Size"]


def test_serves_a_real_digit_as_non_root_on_a_read_only_root(container: Container) -> None:
    digits, labels = mnist_test_digits(3)
    for digit, label in zip(digits, labels, strict=True):
        response = httpx.post(
            f"{container.url}/models/mnist/predict",
            files={"file": ("digit.png", encode(digit, "PNG"), "image/png")},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "mnist" and len(body["top_k"]) == 3
        if label == labels[0]:  # the first MNIST test digit (a 7), which the model reads right
            assert body["prediction"] == str(int(label))
    health = httpx.get(f"{container.url}/health", timeout=5).json()
    assert health["models"] == ["mnist"] and health["unavailable"] == []
    # The image's own HEALTHCHECK command passes inside the container.
    assert containers.podman("healthcheck", "run", container.name, check=False).returncode == 0
    # Every process runs as uid 10001; nothing outside /tmp can be written.
    uids = containers.podman("top", container.name, "huser").stdout.split()[1:]
    assert uids and set(uids) == {"10001"}, uids
    write = containers.podman("exec", container.name, "python3", "-c", "open('/app/x', 'w')", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    tmp = containers.podman("exec", container.name, "python3", "-c", "open('/tmp/x', 'w').write('ok')")
    assert tmp.returncode == 0


def test_bad_upload_gets_a_4xx_from_the_container(container: Container) -> None:
    response = httpx.post(
        f"{container.url}/models/mnist/predict",
        files={"file": ("scan.pdf", b"%PDF-1.7\n%%EOF\n", "application/pdf")},
        timeout=30,
    )
    assert response.status_code == 415
    assert "detail" in response.json()


def test_sigterm_finishes_the_request_in_flight(container: Container) -> None:
    """Half an upload is sent, the container gets SIGTERM, new connections are refused, then the
    rest of the upload is sent: the answer is a 200 prediction and the server then exits 0
    (uvicorn's graceful shutdown)."""
    digits, labels = mnist_test_digits(1)
    content_type, body = multipart(encode(digits[0], "PNG"))
    port = int(container.url.rsplit(":", 1)[1])
    head = (
        f"POST /models/mnist/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head + body[: len(body) // 2])
        # In flight: the app is serving it (the /metrics request reading the gauge is the other).
        wait_for(lambda: in_progress(container.url) >= 2, "the half-sent request to reach the app")
        containers.podman("kill", "--signal", "TERM", container.name)
        # Shutdown has begun: the listening socket is closed, new connections are refused.
        wait_for(lambda: not accepts_connections(port), "the server to stop accepting connections")
        assert (
            containers.podman("inspect", "--format", "{{.State.Running}}", container.name).stdout.strip()
            == "true"
        )
        connection.sendall(body[len(body) // 2 :])
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 200"), received[:500]
    prediction = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert prediction["prediction"] == str(int(labels[0]))
    exit_code = containers.podman("wait", container.name, timeout=60).stdout.strip()
    assert exit_code == "0", container.logs()[-3000:]
    assert "Finished server process" in container.logs()


def test_image_builds_from_the_package_tree_only(image: str, tmp_path: Path) -> None:
    """What is in /app is the package and uvicorn: no zip, no size report, no build context."""
    listing = subprocess.run(
        containers.run_command("--rm", "--network", "none", "--entrypoint", "ls", image, "/app"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert {"service", "models_onnx", "onnxruntime", "uvicorn", "fastapi"} <= set(listing)
    assert not [name for name in listing if name.endswith((".zip", ".json", ".txt"))]
