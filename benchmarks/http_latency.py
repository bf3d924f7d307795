"""End-to-end HTTP latency of a real JPEG upload: p50/p99 over sequential requests.

The client keeps one connection alive and sends the same multipart upload ``requests`` times
after a short warm-up, so each sample is one request's full path: multipart parsing, image
decoding, preprocessing, inference and JSON response.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass

import httpx

from .cold_start import Launch
from .stats import percentile

# Stop after this many seconds once MIN_REQUESTS answers are in (the TF baseline on ResNet50
# takes ~0.3 s a request here); the number of requests made is in the results.
TIME_BUDGET_S = 45.0
MIN_REQUESTS = 50


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    requests: int


def serve(launch: Launch, port: int, timeout: float = 180.0) -> subprocess.Popen:
    """Start an HTTP variant and wait until it accepts connections."""
    argv = [*launch.argv, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    process = subprocess.Popen(
        argv, env=launch.env, cwd=launch.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{launch.variant} exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2.0)
            return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{launch.variant} did not start within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(url: str, upload: bytes, upload_name: str, requests: int, warmup: int = 5) -> Latency:
    """Latency of ``requests`` sequential POSTs of ``upload`` to ``url``.

    Raises:
        RuntimeError: any response is not 200.
    """
    files = {"file": (upload_name, upload, "image/jpeg")}
    times: list[float] = []
    deadline = time.perf_counter() + TIME_BUDGET_S
    with httpx.Client(timeout=60.0) as client:
        for i in range(warmup + requests):
            start = time.perf_counter()
            response = client.post(url, files=files)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
            if i >= warmup:
                times.append(elapsed)
            if len(times) >= MIN_REQUESTS and time.perf_counter() > deadline:
                break
    return Latency(percentile(times, 50) * 1000, percentile(times, 99) * 1000, len(times))
