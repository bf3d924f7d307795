"""HTTP latency by upload size: the same photo at 500x375, 1600x1200 and 4032x3024 (12 MP).

    python -m benchmarks.http_sizes --model DIR [--requests 60]

A phone photo is 12 MP; what a model sees is ~224x224. One real cats-vs-dogs photo is brought
to phone size (bicubic), and the smaller sizes are downscales of that (JPEG quality 90 each); a
second 12 MP copy adds sensor-like noise so the JPEG weighs what a phone's does (1.7 MB vs ~0.5).
The sizes are sent in turn, one request at a time, to one server, so each ratio compares
requests made side by side.
Target (issue 11): p50 at 4032x3024 <= 2x p50 at 500x375.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from .memory_bursts import model_server, phone_jpegs
from .paths import PROJECT_ROOT
from .stats import percentile

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


def measure(url: str, uploads: dict[str, bytes], requests: int, warmup: int = 3) -> dict:
    """p50/p99 ms per upload, the requests interleaved size by size over one connection.

    Raises:
        RuntimeError: a response is not 200.
    """
    times: dict[str, list[float]] = {label: [] for label in uploads}
    with httpx.Client(timeout=120) as client:
        for round_ in range(warmup + requests):
            for label, data in uploads.items():
                start = time.perf_counter()
                response = client.post(url, files={"file": (f"{label}.jpg", data, "image/jpeg")})
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
                if round_ >= warmup:
                    times[label].append(elapsed)
    sizes = {
        label: {
            "bytes": len(uploads[label]),
            "p50_ms": percentile(t, 50) * 1000,
            "p99_ms": percentile(t, 99) * 1000,
            "requests": len(t),
        }
        for label, t in times.items()
    }
    small, large = (f"{w}x{h}" for w, h in (SIZES[0], SIZES[-1]))
    return {
        "sizes": sizes,
        "ratio_12mp_vs_small": sizes[large]["p50_ms"] / sizes[small]["p50_ms"],
        "ratio_phone_weight_vs_small": sizes[PHONE_LABEL]["p50_ms"] / sizes[small]["p50_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http_sizes",
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
        result = measure(f"{server.url}/models/{args.model.name}/predict", same_photo_sizes(), args.requests)
    result["command"] = " ".join(["python -m benchmarks.http_sizes", *sys.argv[1:]])
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
