"""HTTP latency by upload size: the same photo at 500x375, 1600x1200 and 4032x3024 (12 MP).

    python -m benchmarks.http.http_sizes --model DIR [--requests 60]

A phone photo is 12 MP; what a model sees is ~224x224. One real cats-vs-dogs photo is brought
to phone size (bicubic), and the smaller sizes are downscales of that (JPEG quality 90 each); a
second 12 MP copy adds sensor-like noise so the JPEG weighs what a phone's does (1.7 MB vs ~0.5).
The sizes are sent in turn, one request at a time, to one server, so each ratio compares
requests made side by side.
Target (issue 11): p50 at 4032x3024 <= 2x p50 at 500x375.

Besides wall-clock latency, each request's server CPU time is recorded: the sum over the
server's threads of the kernel's ``/proc/PID/task/TID/schedstat`` run time (ns; Linux only)
before and after the request. On a machine shared with other jobs the wall-clock ratio moves
with their load; the CPU-time ratio says what the server itself spends per size.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.output import emit
from convert.cpu import cpu_info
from tests.harness.paths import PROJECT_ROOT
from tests.harness.photos import phone_jpegs
from tests.harness.servers import model_server, process_cpu_seconds
from tests.harness.stats import percentile

SIZES = ((500, 375), (1600, 1200), (4032, 3024))
RATIO_TARGET = 2.0
PHONE_LABEL = "4032x3024 phone-weight"


def same_photo_sizes() -> dict[str, bytes]:
    """Label -> JPEG bytes (quality 90) of one real photo at each of ``SIZES``, plus the
    12 MP size with sensor-like noise (``PHONE_LABEL``, the weight of a real phone JPEG: more
    entropy-coded data to decode than a smooth upscale)."""
    smooth = Image.open(io.BytesIO(phone_jpegs(1, noise=0.0)[0]))
    out = {}
    for size in SIZES:
        buf = io.BytesIO()
        (smooth if size == smooth.size else smooth.resize(size, Image.Resampling.LANCZOS)).save(
            buf, "JPEG", quality=90
        )
        out[f"{size[0]}x{size[1]}"] = buf.getvalue()
    out[PHONE_LABEL] = phone_jpegs(1)[0]
    return out


def measure(
    url: str, uploads: dict[str, bytes], requests: int, warmup: int = 3, server_pid: int | None = None
) -> dict:
    """p50/p99 ms per upload, the requests interleaved size by size over one connection; with
    ``server_pid``, also the server's CPU ms per request (p50).

    Raises:
        RuntimeError: a response is not 200.
    """
    times: dict[str, list[float]] = {label: [] for label in uploads}
    cpu: dict[str, list[float]] = {label: [] for label in uploads}
    with httpx.Client(timeout=120) as client:
        for round_ in range(warmup + requests):
            for label, data in uploads.items():
                cpu_start = process_cpu_seconds(server_pid)
                start = time.perf_counter()
                response = client.post(url, files={"file": (f"{label}.jpg", data, "image/jpeg")})
                elapsed = time.perf_counter() - start
                cpu_end = process_cpu_seconds(server_pid)
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
                if round_ >= warmup:
                    times[label].append(elapsed)
                    if cpu_start is not None and cpu_end is not None:
                        cpu[label].append(cpu_end - cpu_start)
    sizes = {
        label: {
            "bytes": len(uploads[label]),
            "p50_ms": percentile(t, 50) * 1000,
            "p99_ms": percentile(t, 99) * 1000,
            "requests": len(t),
            **({"server_cpu_p50_ms": percentile(cpu[label], 50) * 1000} if cpu[label] else {}),
        }
        for label, t in times.items()
    }
    small, large = (f"{w}x{h}" for w, h in (SIZES[0], SIZES[-1]))
    result = {
        "sizes": sizes,
        "ratio_12mp_vs_small": sizes[large]["p50_ms"] / sizes[small]["p50_ms"],
        "ratio_phone_weight_vs_small": sizes[PHONE_LABEL]["p50_ms"] / sizes[small]["p50_ms"],
    }
    if all("server_cpu_p50_ms" in sizes[label] for label in (small, large, PHONE_LABEL)):
        small_cpu = sizes[small]["server_cpu_p50_ms"]
        result["server_cpu_ratio_12mp_vs_small"] = sizes[large]["server_cpu_p50_ms"] / small_cpu
        result["server_cpu_ratio_phone_weight_vs_small"] = sizes[PHONE_LABEL]["server_cpu_p50_ms"] / small_cpu
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http.http_sizes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, metavar="DIR")
    parser.add_argument("--requests", type=int, default=60, help="requests per size")
    parser.add_argument(
        "--server-root", type=Path, default=PROJECT_ROOT, help="directory holding the service/ to serve"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    with model_server([args.model], {}, args.server_root) as server:
        result = measure(
            f"{server.url}/models/{args.model.name}/predict",
            same_photo_sizes(),
            args.requests,
            server_pid=server.process.pid,
        )
    result["command"] = " ".join(["python -m benchmarks.http.http_sizes", *sys.argv[1:]])
    result["cpu"] = cpu_info()
    result["load_average"] = os.getloadavg()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
