"""Cold start: wall time from spawning a fresh process to its first correct prediction.

Three ways to serve the same model, each in a new process per run:

- ``lambda``: the packaged handler in a Python that sees only the Lambda package (``-I -S``),
  invoked with an API Gateway HTTP API event carrying a multipart JPEG upload;
- ``uvicorn``: the container's command (``python -m uvicorn service.app:app``) over the same
  package plus uvicorn, polled with the upload over HTTP until it answers;
- ``tf_baseline``: ``uvicorn benchmarks.tf_baseline:app`` (FastAPI + TensorFlow/Keras), polled
  the same way.

A prediction counts when it names the class that the same model format predicts in-process
for the same upload. Peak RSS is the process's high-water mark (``VmHWM`` of /proc, or
``ru_maxrss`` from the Lambda child) when the first answer arrives.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness.paths import PROJECT_ROOT
from tests.harness.servers import stop

LAMBDA_CHILD = Path(__file__).with_name("lambda_cold.py")
FLOOR_CHILD = Path(__file__).with_name("floor_cold.py")


@dataclass(frozen=True)
class Launch:
    """How to start one variant: argv, environment, working directory and how to ask it."""

    variant: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    predict_path: str = ""  # HTTP variants
    event_path: Path | None = None  # lambda variant


@dataclass
class Sample:
    """One cold start: wall seconds to the first correct answer, the process's peak RSS and
    CPU seconds by then (less sensitive than wall time to other load on shared cores), and for
    the Lambda child the seconds of each phase after the interpreter started."""

    seconds: float
    peak_rss_bytes: int
    cpu_seconds: float
    phases_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Series:
    variant: str
    model: str
    samples: list[Sample] = field(default_factory=list)


def run_once(
    launch: Launch, upload: bytes, upload_name: str, expected: str, port: int, timeout: float = 180.0
) -> Sample:
    """Spawn ``launch``, wait for its first correct prediction, stop it; return the sample.

    Raises:
        RuntimeError: the process exited, answered wrongly, or did not answer in ``timeout``.
    """
    if launch.variant.startswith("floor_"):
        return run_floor(launch, timeout)
    if launch.event_path is not None:
        return _run_lambda(launch, expected, timeout)
    return _run_http(launch, upload, upload_name, expected, port, timeout)


def _run_lambda(launch: Launch, expected: str, timeout: float) -> Sample:
    argv = [*launch.argv, str(LAMBDA_CHILD), str(launch.cwd), str(launch.event_path), "{fd}"]
    elapsed, result = _spawn_reporting_child(launch, argv, timeout)
    body = json.loads(result["response"]["body"])
    if result["response"]["statusCode"] != 200 or body.get("prediction") != expected:
        raise RuntimeError(f"lambda child answered {result['response']} (expected {expected!r})")
    return Sample(elapsed, result["peak_rss_bytes"], result["cpu_seconds"], result["phases_s"])


def _spawn_reporting_child(launch: Launch, argv: list[str], timeout: float) -> tuple[float, dict]:
    """Spawn a child that writes one JSON line to the pipe whose number replaces ``{fd}`` in
    ``argv``; (wall seconds from spawn to that line, the parsed line).

    Raises:
        RuntimeError: the child wrote nothing (its stderr is in the message).
        subprocess.TimeoutExpired: it did not exit within ``timeout`` s after writing (killed).
    """
    read_fd, write_fd = os.pipe()
    argv = [arg.replace("{fd}", str(write_fd)) for arg in argv]
    start = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env=launch.env,
        cwd=launch.cwd,
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as results:
        line = results.readline()
    elapsed = time.perf_counter() - start
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    if not line:
        raise RuntimeError(f"{launch.variant} failed ({process.returncode}): {stderr.decode()[-2000:]}")
    return elapsed, json.loads(line)


def _run_http(
    launch: Launch, upload: bytes, upload_name: str, expected: str, port: int, timeout: float
) -> Sample:
    url = f"http://127.0.0.1:{port}{launch.predict_path}"
    files = {"file": (upload_name, upload, "image/jpeg")}
    argv = [*launch.argv, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, env=launch.env, cwd=launch.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        with httpx.Client(timeout=timeout) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{launch.variant} exited: {process.stderr.read().decode()[-2000:]}")
                if time.perf_counter() - start > timeout:
                    raise RuntimeError(f"{launch.variant} did not answer within {timeout} s")
                if not _listening(port):
                    time.sleep(0.005)
                    continue
                try:
                    response = client.post(url, files=files)
                except httpx.TransportError:
                    continue
                elapsed = time.perf_counter() - start
                break
        prediction = response.json().get("prediction") if response.status_code == 200 else None
        if prediction != expected:
            raise RuntimeError(
                f"{launch.variant} answered {response.status_code} {response.text[:300]}"
                f" (expected {expected!r})"
            )
        return Sample(elapsed, _peak_rss(process.pid), _cpu_seconds(process.pid))
    finally:
        process.stderr.close()  # unread once the answer is in; closing it cannot block the child
        stop(process, timeout=20)


def floor_launches(python: str, task_root: Path, onnx_path: Path) -> list[Launch]:
    """The two unavoidable parts of a Lambda cold start, each in a bare ``-I -S`` interpreter
    over the package: ``floor_ort`` (numpy + onnxruntime + session + first run of the model)
    and ``floor_fastapi`` (``import fastapi``)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    argv = [python, "-I", "-S", str(FLOOR_CHILD), str(task_root)]
    return [
        Launch("floor_ort", [*argv, "{fd}", "ort", str(onnx_path)], env, task_root),
        Launch("floor_fastapi", [*argv, "{fd}", "fastapi"], env, task_root),
    ]


def run_floor(launch: Launch, timeout: float = 120.0) -> Sample:
    """Spawn one floor child; wall seconds from spawn to its JSON line (see floor_cold.py).

    Raises:
        RuntimeError: the child wrote nothing (its stderr is in the message).
    """
    elapsed, result = _spawn_reporting_child(launch, launch.argv, timeout)
    return Sample(elapsed, result["peak_rss_bytes"], result["cpu_seconds"], result["phases_s"])


def _listening(port: int) -> bool:
    """Whether something accepts connections on the port: a bare connect, cheap enough to poll
    every few ms without taking CPU from the process being measured (the cores are shared)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return True
    except OSError:
        return False


def _peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lambda_launch(python: str, task_root: Path, model_dir: Path, event_path: Path) -> Launch:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(task_root),
        "EDGE_MODEL_DIR": str(model_dir),
        "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
    }
    return Launch("lambda", [python, "-I", "-S"], env, task_root, event_path=event_path)


def uvicorn_launch(python: str, task_root: Path, server_dir: Path, model_dir: Path, name: str) -> Launch:
    # -S: no site-packages; the package and uvicorn come in through PYTHONPATH, as in the image.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{task_root}:{server_dir}",
        "EDGE_MODEL_DIR": str(model_dir),
        "EDGE_DEFAULT_MODEL": name,
    }
    return Launch(
        "uvicorn",
        [python, "-S", "-m", "uvicorn", "service.app:app"],
        env,
        task_root,
        predict_path=f"/models/{name}/predict",
    )


def baseline_launch(keras_path: Path, manifest_path: Path) -> Launch:
    env = {
        **os.environ,
        "BASELINE_KERAS_MODEL": str(keras_path),
        "BASELINE_MANIFEST": str(manifest_path),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    return Launch(
        "tf_baseline",
        [sys.executable, "-m", "uvicorn", "benchmarks.tf_baseline:app"],
        env,
        PROJECT_ROOT,
        predict_path="/predict",
    )
