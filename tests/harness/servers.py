"""Start a server process on a free loopback port, wait until it is ready, stop it.

The one implementation behind the tests' real uvicorn servers (``tests/support.py``), the load
test, the HTTP and memory benchmarks and the cold-start runs. Servers listen on 127.0.0.1 only.

    with serve(uvicorn_command(port), port=port, env={...}) as server:
        httpx.get(f"{server.url}/health")

Output goes to a file (or is discarded), never to a pipe nobody reads: a full pipe (~64 KB of
log lines) would block the server. Stopping sends SIGTERM (uvicorn's graceful shutdown) and
SIGKILL only if the process is still alive after ``stop_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .paths import PROJECT_ROOT

HOST = "127.0.0.1"
Ready = Callable[[httpx.Response], bool]


def free_port() -> int:
    """A TCP port free on the loopback interface right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def uvicorn_command(
    port: int, app: str = "service.app:app", python: str = sys.executable, extra: Sequence[str] = ()
) -> list[str]:
    """``python -m uvicorn APP --host 127.0.0.1 --port PORT [extra...]``."""
    return [python, "-m", "uvicorn", app, "--host", HOST, "--port", str(port), *extra]


def healthy(response: httpx.Response) -> bool:
    """Ready when ``/health`` answers 200 (the default readiness check)."""
    return response.status_code == 200


def answers(response: httpx.Response) -> bool:
    """Ready as soon as anything answers over HTTP."""
    return True


@dataclass(frozen=True)
class Server:
    """A running server process: its base URL, port, process and log file (None if discarded)."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path | None

    def log_lines(self) -> list[str]:
        if self.log_path is None:
            return []
        return self.log_path.read_text(errors="replace").splitlines()


def stop(process: subprocess.Popen, timeout: float = 15.0) -> int | None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; the exit status."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def wait_until_ready(
    server: Server, path: str = "/health", ready: Ready = healthy, timeout: float = 60.0
) -> None:
    """Poll ``GET path`` every 0.1 s until ``ready(response)``.

    Raises:
        RuntimeError: the process exited (with the end of its log) or ``timeout`` passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = "\n".join(server.log_lines()[-60:])
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{tail}")
        try:
            if ready(httpx.get(f"{server.url}{path}", timeout=2.0)):
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {server.url} was not ready ({path}) within {timeout} s")


@contextlib.contextmanager
def serve(
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    cwd: Path = PROJECT_ROOT,
    log_path: Path | None = None,
    ready_path: str = "/health",
    ready: Ready = healthy,
    timeout: float = 60.0,
    stop_timeout: float = 15.0,
) -> Iterator[Server]:
    """Start ``argv`` (a server that will listen on ``port``), yield it once ready, stop it.

    Args:
        env: the child's whole environment (default: this process's).
        log_path: file for stdout + stderr; None discards them.
    """
    output = log_path.open("wb") if log_path is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    finally:
        if log_path is not None:
            output.close()  # type: ignore[union-attr]
    server = Server(f"http://{HOST}:{port}", port, process, log_path)
    try:
        wait_until_ready(server, ready_path, ready, timeout)
        yield server
    finally:
        stop(process, stop_timeout)


@contextlib.contextmanager
def service_server(
    model_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    uvicorn_args: Sequence[str] = (),
    log_path: Path | None = None,
    ready: Ready = healthy,
    timeout: float = 60.0,
    stop_timeout: float = 15.0,
) -> Iterator[Server]:
    """``uvicorn service.app:app`` over ``model_dir``, with ``env`` (``EDGE_*``) added to ours."""
    port = free_port()
    child_env = {**os.environ, "EDGE_MODEL_DIR": str(model_dir), **(env or {})}
    with serve(
        uvicorn_command(port, extra=uvicorn_args),
        port=port,
        env=child_env,
        log_path=log_path,
        ready=ready,
        timeout=timeout,
        stop_timeout=stop_timeout,
    ) as server:
        yield server


@contextlib.contextmanager
def model_server(
    model_dirs: list[Path], env_extra: dict[str, str], root: Path = PROJECT_ROOT
) -> Iterator[Server]:
    """uvicorn on loopback serving ``model_dirs`` (linked into one scanned directory, the first
    the default model, ``EDGE_LOG_LEVEL=WARNING``), with the ``service/`` package found under
    ``root`` (another checkout, to compare) and ``env_extra`` added to this process's environment."""
    served = Path(tempfile.mkdtemp(prefix="model-server-"))
    for directory in model_dirs:
        (served / directory.name).symlink_to(directory.resolve())
    env = {
        **os.environ,
        "EDGE_MODEL_DIR": str(served),
        "EDGE_DEFAULT_MODEL": model_dirs[0].name,
        "EDGE_LOG_LEVEL": "WARNING",
        **env_extra,
    }
    port = free_port()
    argv = uvicorn_command(port, extra=["--no-access-log"])
    with serve(argv, port=port, env=env, cwd=root, timeout=120) as server:
        yield server


def process_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds run so far by the live threads of process ``pid``, at nanosecond resolution
    (first field of ``/proc/PID/task/TID/schedstat``; ``/proc/PID/stat`` counts 10 ms ticks).
    None without a pid or off Linux."""
    if pid is None:
        return None
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):  # thread gone, or no schedstats
            continue
    return total / 1e9
