"""The load generator: many concurrent clients against a running server, answers checked.

Driven by ``tests/test_load.py`` (a few seconds, in CI) and by ``python -m benchmarks.http.load``
(>= 60 s and >= 10,000 requests, the RSS trend).

An asyncio + httpx load generator: ``clients`` coroutines each keep one connection and POST
real uploads (MNIST test digits as PNG, and the same digits as dark-on-paper JPEG photos) to
``/predict`` back to back for ``duration`` seconds. Meanwhile a separate connection probes
``/health`` every 250 ms, and the server's RSS is sampled every 500 ms (psutil).

A request fails when it errors, times out, is not a 200, or its answer differs from the answer
the same upload got sequentially before the load (top-k labels and probabilities to 1e-6):
concurrent use of the ONNX Runtime session must not change results. RSS is "flat" when,
after the warm-up requests, it grows by less than max(8 MiB, 5 %) over the run; the
least-squares slope of RSS against requests served is reported too.

The generator shares the machine with the server (2 cores here): throughput is a lower bound.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import psutil
from PIL import Image

from .paths import MNIST_NPZ
from .stats import percentile

FLAT_ABS_BYTES = 8 * 2**20
FLAT_REL = 0.05


@dataclass
class Upload:
    name: str
    data: bytes
    content_type: str
    expected: list | None = None  # top_k of the sequential answer


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    requests: int
    failures: int
    failure_examples: list[str]
    throughput_rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    health_probes: int
    health_failures: int
    health_p50_ms: float
    health_p99_ms: float
    health_max_ms: float
    rss_start_mib: float
    rss_after_warmup_mib: float
    rss_end_mib: float
    rss_max_mib: float
    rss_growth_after_warmup_mib: float
    rss_slope_kib_per_10k_requests: float
    rss_flat: bool
    warmup_requests: int
    rss_samples: list[tuple[int, float]] = field(repr=False)


def real_uploads(count: int = 24) -> list[Upload]:
    """``count`` MNIST test digits as 28x28 PNGs and as 320x240 dark-ink-on-paper JPEGs."""
    with np.load(MNIST_NPZ) as data:
        digits = data["x_test"][:count]
    uploads = []
    for i, digit in enumerate(digits):
        uploads.append(Upload(f"digit{i}.png", _encode(Image.fromarray(digit), "PNG"), "image/png"))
        paper = Image.new("L", (320, 240), 235)
        ink = Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC)
        paper.paste(ink, (90 + i % 40, 50 + i % 30))
        uploads.append(Upload(f"photo{i}.jpg", _encode(paper, "JPEG", quality=88), "image/jpeg"))
    return uploads


def _encode(image: Image.Image, fmt: str, **args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **args)
    return buffer.getvalue()


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        x["label"] == y["label"] and abs(x["probability"] - y["probability"]) <= 1e-6
        for x, y in zip(a, b, strict=True)
    )


async def generate_load(
    url: str,
    pid: int,
    clients: int = 32,
    duration: float = 60.0,
    warmup_requests: int = 1000,
    min_requests: int = 0,
) -> LoadResult:
    """Run the load against ``url`` (server process ``pid``) and summarise it.

    Runs for ``duration`` seconds, then on until ``min_requests`` have been sent (at most
    three times ``duration`` in all).
    """
    uploads = real_uploads()
    server = psutil.Process(pid)
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        for upload in uploads:  # sequential reference answers
            response = await client.post(
                "/predict", files={"file": (upload.name, upload.data, upload.content_type)}
            )
            response.raise_for_status()
            upload.expected = response.json()["top_k"]

    latencies: list[float] = []
    failures: list[str] = []
    health: list[float] = []
    health_failures: list[str] = []
    rss: list[tuple[int, float]] = []
    begin = time.monotonic()

    def running() -> bool:
        now = time.monotonic() - begin
        sent = len(latencies) + len(failures)
        return now < duration or (sent < min_requests and now < 3 * duration)

    rss_start = server.memory_info().rss

    async def worker(index: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as session:
            n = index
            while running():
                upload = uploads[n % len(uploads)]
                n += clients
                start = time.perf_counter()
                try:
                    response = await session.post(
                        "/predict", files={"file": (upload.name, upload.data, upload.content_type)}
                    )
                    elapsed = time.perf_counter() - start
                    if response.status_code != 200:
                        failures.append(f"{upload.name}: {response.status_code} {response.text[:200]}")
                    elif not _same(response.json()["top_k"], upload.expected):
                        failures.append(f"{upload.name}: answer differs from the sequential one")
                    else:
                        latencies.append(elapsed)
                except httpx.HTTPError as exc:
                    failures.append(f"{upload.name}: {type(exc).__name__}: {exc}")

    async def prober() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as session:
            while running():
                start = time.perf_counter()
                try:
                    response = await session.get("/health")
                    if response.status_code == 200:
                        health.append(time.perf_counter() - start)
                    else:
                        health_failures.append(str(response.status_code))
                except httpx.HTTPError as exc:
                    health_failures.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.25)

    async def sampler() -> None:
        while running():
            rss.append((len(latencies) + len(failures), server.memory_info().rss / 2**20))
            await asyncio.sleep(0.5)

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)), prober(), sampler())
    elapsed = time.monotonic() - started
    rss.append((len(latencies) + len(failures), server.memory_info().rss / 2**20))
    return _summarise(
        clients, elapsed, latencies, failures, health, health_failures, rss, rss_start, warmup_requests
    )


def _summarise(
    clients: int,
    elapsed: float,
    latencies: list[float],
    failures: list[str],
    health: list[float],
    health_failures: list[str],
    rss: list[tuple[int, float]],
    rss_start: int,
    warmup_requests: int,
) -> LoadResult:
    total = len(latencies) + len(failures)
    after = [(n, mib) for n, mib in rss if n >= min(warmup_requests, total // 4)]
    if len(after) < 2:
        after = rss[len(rss) // 4 :]
    baseline, end = after[0][1], after[-1][1]
    growth = end - baseline
    counts = np.array([n for n, _ in after], dtype=np.float64)
    values = np.array([mib for _, mib in after], dtype=np.float64)
    slope = float(np.polyfit(counts, values, 1)[0]) if np.ptp(counts) > 0 else 0.0  # MiB/request
    ms = [t * 1000 for t in latencies]
    health_ms = [t * 1000 for t in health]
    return LoadResult(
        clients=clients,
        duration_s=round(elapsed, 2),
        requests=total,
        failures=len(failures),
        failure_examples=failures[:5],
        throughput_rps=round(total / elapsed, 1),
        p50_ms=round(percentile(ms, 50), 2),
        p90_ms=round(percentile(ms, 90), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(max(ms, default=float("nan")), 2),
        health_probes=len(health) + len(health_failures),
        health_failures=len(health_failures),
        health_p50_ms=round(percentile(health_ms, 50), 2),
        health_p99_ms=round(percentile(health_ms, 99), 2),
        health_max_ms=round(max(health_ms, default=float("nan")), 2),
        rss_start_mib=round(rss_start / 2**20, 1),
        rss_after_warmup_mib=round(baseline, 1),
        rss_end_mib=round(end, 1),
        rss_max_mib=round(max(mib for _, mib in rss), 1),
        rss_growth_after_warmup_mib=round(growth, 2),
        rss_slope_kib_per_10k_requests=round(slope * 1024 * 10_000, 1),
        rss_flat=growth * 2**20 < max(FLAT_ABS_BYTES, FLAT_REL * baseline * 2**20),
        warmup_requests=min(warmup_requests, total // 4),
        rss_samples=rss,
    )
