"""Memory under bursts of phone photos: RSS of a real uvicorn server, before, during and after.

    python -m benchmarks.memory.memory_bursts --model DIR [--model DIR ...] [--bursts 3] [--concurrency 32]

One server process (``python -m uvicorn service.app:app``, loopback only) serves every model
given. Each burst sends ``concurrency`` simultaneous multipart uploads of real 12 MP JPEGs
(4032x3024, cats-vs-dogs photos upscaled with a little sensor-like noise so they weigh what a
phone photo does, 2-4 MB), spread over the models, and waits for every answer. The server's RSS
is sampled with psutil every ``--interval`` seconds throughout; "start" is the median over the
second before the first burst, "after" the median over the ``--settle`` seconds after each.

Targets (issue 11): peak <= start + 100 MB; after the bursts, within 30 MB of start.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from benchmarks.output import emit
from tests.harness.paths import PROJECT_ROOT
from tests.harness.photos import phone_jpegs
from tests.harness.servers import model_server

PEAK_TARGET_MB = 100.0
AFTER_TARGET_MB = 30.0


class RssSampler(threading.Thread):
    """Samples a process's RSS (bytes) every ``interval`` seconds into ``samples`` (time, rss)."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except psutil.NoSuchProcess:
                return
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def between(self, start: float, end: float) -> list[int]:
        return [rss for t, rss in self.samples if start <= t <= end]


async def burst(base: str, names: list[str], uploads: list[bytes], concurrency: int) -> dict[int, int]:
    """``concurrency`` simultaneous uploads; returns how many answers had each status code."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one(i: int) -> int:
            name = names[i % len(names)]
            files = {"file": (f"phone{i}.jpg", uploads[i % len(uploads)], "image/jpeg")}
            response = await client.post(f"{base}/models/{name}/predict", files=files)
            return response.status_code

        codes = await asyncio.gather(*(one(i) for i in range(concurrency)))
    return {code: codes.count(code) for code in sorted(set(codes))}


def run(args: argparse.Namespace) -> dict:
    uploads = phone_jpegs(args.images)
    env_extra = dict(item.split("=", 1) for item in args.env)
    mb = 1e6
    with model_server(args.model, env_extra, args.server_root) as server:
        sampler = RssSampler(server.process.pid, args.interval)
        sampler.start()
        time.sleep(args.settle)
        t0 = time.monotonic()
        start_rss = statistics.median(sampler.between(t0 - 1.0, t0))
        names = [d.name for d in args.model]
        # One request per model, one at a time: ONNX Runtime's first run allocates its buffers
        # and first requests import what they need; "warm" is the floor a served model needs.
        with httpx.Client(timeout=120) as client:
            for name in names:
                files = {"file": ("warm.jpg", uploads[0], "image/jpeg")}
                client.post(f"{server.url}/models/{name}/predict", files=files).raise_for_status()
        time.sleep(args.settle)
        t1 = time.monotonic()
        warm_rss = statistics.median(sampler.between(t1 - 1.0, t1))
        print(
            f"start {start_rss / 1e6:.1f} MB, after one request per model {warm_rss / 1e6:.1f} MB", flush=True
        )
        bursts = []
        for i in range(args.bursts):
            begin = time.monotonic()
            codes = asyncio.run(burst(server.url, names, uploads, args.concurrency))
            if server.process.poll() is not None:
                raise RuntimeError(f"server exited with {server.process.returncode} during burst {i + 1}")
            end = time.monotonic()
            time.sleep(args.settle)
            settled = time.monotonic()
            peak = max(sampler.between(begin, end + 0.5))
            after = statistics.median(sampler.between(settled - 1.0, settled))
            bursts.append(
                {
                    "seconds": round(end - begin, 2),
                    "status_codes": codes,
                    "peak_mb": round(peak / mb, 1),
                    "after_mb": round(after / mb, 1),
                }
            )
            print(
                f"burst {i + 1}: {end - begin:.1f} s, answers {codes}, peak {peak / mb:.1f} MB, "
                f"after {after / mb:.1f} MB",
                flush=True,
            )
        sampler.stop()
    peak_all = max(b["peak_mb"] for b in bursts)
    after_last = bursts[-1]["after_mb"]
    start_mb = round(start_rss / mb, 1)
    return {
        "command": " ".join(["python -m benchmarks.memory.memory_bursts", *sys.argv[1:]]),
        "models": names,
        "upload_bytes": [len(u) for u in uploads],
        "concurrency": args.concurrency,
        "env": env_extra,
        "start_mb": start_mb,
        "warm_mb": round(warm_rss / mb, 1),
        "bursts": bursts,
        "targets": {
            f"peak <= start + {PEAK_TARGET_MB:.0f} MB": [
                round(peak_all - start_mb, 1),
                peak_all - start_mb <= PEAK_TARGET_MB,
            ],
            f"after <= start + {AFTER_TARGET_MB:.0f} MB": [
                round(after_last - start_mb, 1),
                after_last - start_mb <= AFTER_TARGET_MB,
            ],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.memory.memory_bursts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, action="append", required=True, metavar="DIR")
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--images", type=int, default=8, help="distinct 12 MP photos to cycle through")
    parser.add_argument("--interval", type=float, default=0.01, help="RSS sampling period, seconds")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before/after each burst")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server environment, e.g. MALLOC_ARENA_MAX=2 (to compare)",
    )
    parser.add_argument(
        "--server-root",
        type=Path,
        default=PROJECT_ROOT,
        help="directory holding the service/ package to serve (e.g. an export of another commit, to compare)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    results = run(args)
    emit(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
