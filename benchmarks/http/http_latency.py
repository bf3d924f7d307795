"""End-to-end HTTP latency of a real JPEG upload: p50/p99 over sequential requests.

The client keeps one connection alive and sends the same multipart upload ``requests`` times
after a short warm-up, so each sample is one request's full path: multipart parsing, image
decoding, preprocessing, inference and JSON response.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.startup.cold_start import Launch
from tests.harness import servers
from tests.harness.servers import Server
from tests.harness.stats import percentile

# Stop after this many seconds once MIN_REQUESTS answers are in (the TF baseline on ResNet50
# takes ~0.3 s a request here); the number of requests made is in the results.
TIME_BUDGET_S = 45.0
MIN_REQUESTS = 50


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    requests: int


@contextlib.contextmanager
def serve(launch: Launch, port: int, timeout: float = 180.0) -> Iterator[Server]:
    """Run an HTTP variant on ``port`` until the block ends; ready once it answers over HTTP."""
    argv = [*launch.argv, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with servers.serve(
        argv,
        port=port,
        env=launch.env,
        cwd=launch.cwd,
        ready_path="/openapi.json",
        ready=servers.answers,
        timeout=timeout,
        stop_timeout=20,
    ) as server:
        yield server


def measure(url: str, upload: bytes, upload_name: str, requests: int, warmup: int = 5) -> Latency:
    """Latency of ``requests`` sequential POSTs of ``upload`` to ``url``.

    Raises:
        RuntimeError: any response is not 200.
    """
    files = {"file": (upload_name, upload, "image/jpeg")}
    times = _timed_posts(url, files, requests, warmup, 60.0, time.perf_counter() + TIME_BUDGET_S)
    return Latency(percentile(times, 50) * 1000, percentile(times, 99) * 1000, len(times))


def measure_batch(
    url: str, upload: bytes, upload_name: str, images: int, requests: int, warmup: int = 2
) -> dict:
    """p50/p99 of ``requests`` sequential batch requests of ``images`` copies of ``upload``
    (multipart field ``files``, ``POST /models/{name}/predict/batch``), and p50 per image.

    Raises:
        RuntimeError: a response is not 200.
    """
    files = [("files", (f"{i}-{upload_name}", upload, "image/jpeg")) for i in range(images)]
    times = _timed_posts(url, files, requests, warmup, 120.0, deadline=None)
    p50 = percentile(times, 50) * 1000
    return {
        "images": images,
        "requests": len(times),
        "p50_ms": p50,
        "p99_ms": percentile(times, 99) * 1000,
        "p50_ms_per_image": p50 / images,
    }


def _timed_posts(
    url: str, files: Any, requests: int, warmup: int, timeout: float, deadline: float | None
) -> list[float]:
    """Seconds per sequential multipart POST after ``warmup`` untimed ones; stops early past
    ``deadline`` (perf_counter) once ``MIN_REQUESTS`` are timed.

    Raises:
        RuntimeError: a response is not 200.
    """
    times: list[float] = []
    with httpx.Client(timeout=timeout) as client:
        for i in range(warmup + requests):
            start = time.perf_counter()
            response = client.post(url, files=files)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
            if i >= warmup:
                times.append(elapsed)
            if deadline is not None and len(times) >= MIN_REQUESTS and time.perf_counter() > deadline:
                break
    return times
