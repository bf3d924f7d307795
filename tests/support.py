"""Test helpers: real data from ../shared, real images, and a real uvicorn server."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
MNIST_NPZ = SHARED_DATA / "mnist" / "mnist.npz"
BUNDLED_MODELS = PROJECT_ROOT / "models_onnx"


def mnist_test_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test digits: uint8 (N, 28, 28), labels uint8 (N,)."""
    with np.load(MNIST_NPZ) as data:
        return data["x_test"][:count], data["y_test"][:count]


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **save_args) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    """A uvicorn subprocess: its base URL, the process, and the file its stdout goes to."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


@contextlib.contextmanager
def running_server(
    model_dir: Path = BUNDLED_MODELS, *, uvicorn_args: tuple[str, ...] = (), **env: str
) -> Iterator[RunningServer]:
    """Run ``uvicorn service.app:app`` in a subprocess on a free loopback port.

    ``uvicorn_args`` are extra uvicorn options, ``env`` adds ``EDGE_*`` settings. Output goes to a
    temporary file, not a pipe: a pipe nobody reads fills up after ~64 KB of log lines and
    then blocks the server. The server is stopped with SIGTERM (graceful shutdown).
    """
    port = free_port()
    child_env = {**os.environ, "EDGE_MODEL_DIR": str(model_dir), **env}
    with tempfile.TemporaryDirectory(prefix="uvicorn-log-") as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "service.app:app", "--host", "127.0.0.1",
                 "--port", str(port), *uvicorn_args],
                cwd=PROJECT_ROOT,
                env=child_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, log_path)
            yield RunningServer(url, process, log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def uvicorn_server(model_dir: Path = BUNDLED_MODELS, **env: str) -> Iterator[str]:
    """Run ``uvicorn service.app:app`` in a subprocess on a free loopback port; yield its URL.

    ``env`` adds ``EDGE_*`` settings. The server is stopped with SIGTERM (graceful shutdown).
    """
    with running_server(model_dir, **env) as server:
        yield server.url


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise RuntimeError(f"server exited with {process.returncode}:\n{output[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server at {url} did not answer /health within {timeout} s")
