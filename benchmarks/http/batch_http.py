"""Images per second over HTTP: one image per request vs batches of 8 and 32, side by side.

    python -m benchmarks.http.batch_http --model-dir models_onnx/mnist \\
        --model-dir /path/to/published/cats_vs_dogs [--sizes 1 8 32] [--rounds 5] [--seconds 3]
    python -m benchmarks.http.batch_http --chunks ...     # also: which ORT chunk size is fastest

One uvicorn server serves every model given; one client on one keep-alive connection sends
real images (MNIST test digits as PNG for the digit model, cats-vs-dogs JPEG photos for a
224x224 model) to ``POST /models/{name}/predict`` (one image per request) and to
``POST /models/{name}/predict/batch`` with 1, 8 and 32 files. Every configuration runs for
``--seconds`` in each of ``--rounds`` rounds, interleaved (round-robin), so a machine whose load
changes affects them alike; the table gives the median images/s over rounds. ``--chunks``
first times ONNX Runtime alone on 32 preprocessed images for each chunk size (one
``session.run`` per chunk), the measurement behind ``EDGE_BATCH_CHUNK``.

Results: printed as a markdown table and written to ``benchmarks/results/batch_http.json``
with the CPU model, its ISA flags and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np

from service.engine.cpus import visible_cpus
from service.manifest import MANIFEST_FILENAME, Manifest
from tests.harness.paths import CATS_DOGS_DIR, MNIST_NPZ, PROJECT_ROOT
from tests.harness.servers import service_server

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
DEFAULT_SIZES = (1, 8, 32)
CHUNKS = (1, 2, 4, 8, 16, 32)


@dataclass
class Row:
    model: str
    route: str  # "single" (/predict) or "batch"
    batch: int
    images_per_s: float  # median over rounds
    images_per_s_rounds: list[float]
    requests: int


def images_for(manifest: Manifest, count: int) -> list[tuple[str, bytes]]:
    """Real images the model is meant for: MNIST digits (PNG) or cats/dogs photos (JPEG)."""
    if manifest.preprocessing.kind == "mnist_digit":
        import io

        from PIL import Image

        with np.load(MNIST_NPZ) as data:
            digits = data["x_test"][:count]
        files = []
        for i, digit in enumerate(digits):
            buffer = io.BytesIO()
            Image.fromarray(digit).save(buffer, format="PNG")
            files.append((f"digit-{i}.png", buffer.getvalue()))
        return files
    photos = sorted((CATS_DOGS_DIR / "cats").glob("*.jpg"))[: count // 2]
    photos += sorted((CATS_DOGS_DIR / "dogs").glob("*.jpg"))[: count - len(photos)]
    return [(p.name, p.read_bytes()) for p in photos]


def run_for(
    client: httpx.Client, url: str, payloads: list[dict], seconds: float, images_per_request: int
) -> tuple[float, int]:
    """(images/s, requests) of sequential POSTs, cycling through ``payloads``, for ~``seconds``."""
    requests = 0
    start = time.perf_counter()
    while True:
        response = client.post(url, **payloads[requests % len(payloads)])
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
        requests += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and requests >= 2:
            return requests * images_per_request / elapsed, requests


def measure_http(
    url: str, models: dict[str, Manifest], sizes: tuple[int, ...], rounds: int, seconds: float
) -> list[Row]:
    """Every (model, route, size) configuration, interleaved over ``rounds``.

    All configurations of a model draw on the same pool of ``max(sizes)`` images (requests of
    ``size`` images take consecutive slices of it), so they pay the same average decoding cost.
    """
    configs = []
    pool_size = max(sizes)
    for name, manifest in models.items():
        files = images_for(manifest, pool_size)
        singles = [{"content": data} for _, data in files]
        configs.append((name, "single", 1, f"{url}/models/{name}/predict", singles))
        for size in sizes:
            slices = [files[i : i + size] for i in range(0, pool_size - size + 1, size)]
            payloads = [
                {"files": [("files", (n, data, "application/octet-stream")) for n, data in part]}
                for part in slices
            ]
            configs.append((name, "batch", size, f"{url}/models/{name}/predict/batch", payloads))
    rates: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    counts = dict.fromkeys(range(len(configs)), 0)
    with httpx.Client(timeout=120.0) as client:
        for _name, _route, _size, target, payloads in configs:  # warm-up
            for payload in payloads[:2]:
                client.post(target, **payload).raise_for_status()
        for _ in range(rounds):
            for i, (_, _, size, target, payloads) in enumerate(configs):
                rate, requests = run_for(client, target, payloads, seconds, size)
                rates[i].append(rate)
                counts[i] += requests
    return [
        Row(name, route, size, statistics.median(rates[i]), [round(r, 1) for r in rates[i]], counts[i])
        for i, (name, route, size, _, _) in enumerate(configs)
    ]


def measure_chunks(model_dirs: list[Path], repeats: int = 5) -> dict[str, dict[int, float]]:
    """Images/s of ONNX Runtime alone on 32 preprocessed real images, per chunk size."""
    from service.config import Settings
    from service.engine.pipeline import predict, prepare
    from service.engine.registry import load_model

    threads = Settings().thread_plan().intra_op_threads
    table: dict[str, dict[int, float]] = {}
    for directory in model_dirs:
        model = load_model(directory / MANIFEST_FILENAME, threads)
        batch = np.concatenate(
            [prepare(model, data, 40_000_000) for _, data in images_for(model.manifest, 32)]
        )
        predict(model, batch, 32)  # warm-up
        table[model.name] = {}
        for chunk in CHUNKS:
            best = min(_timed(predict, model, batch, chunk) for _ in range(repeats))
            table[model.name][chunk] = len(batch) / best
    return table


def _timed(func, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def cpu_description() -> dict[str, object]:
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"cpu": model, "isa": isa, "cpus_available": visible_cpus(), "loadavg": os.getloadavg()}


def markdown(rows: list[Row]) -> str:
    lines = [
        "| model | route | images/request | images/s (median) | per round | requests |",
        "|---|---|---:|---:|---|---:|",
    ]
    for r in rows:
        path = "/predict" if r.route == "single" else "/predict/batch"
        rounds = ", ".join(f"{x:g}" for x in r.images_per_s_rounds)
        lines.append(f"| {r.model} | {path} | {r.batch} | {r.images_per_s:.1f} | {rounds} | {r.requests} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, action="append", required=True, help="a published model directory"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per configuration and round")
    parser.add_argument("--chunk", type=int, default=None, help="EDGE_BATCH_CHUNK for the server")
    parser.add_argument("--chunks", action="store_true", help="also time ORT per chunk size")
    parser.add_argument("--out", type=Path, default=RESULTS / "batch_http.json")
    args = parser.parse_args(argv)

    results: dict[str, object] = {
        "machine": cpu_description(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.chunks:
        chunks = measure_chunks(args.model_dir)
        results["ort_chunks_images_per_s"] = chunks
        for name, table in chunks.items():
            print(f"ORT alone, {name}: " + ", ".join(f"chunk {c}: {v:.0f}/s" for c, v in table.items()))
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        models = {}
        for directory in args.model_dir:
            manifest = Manifest.model_validate_json((directory / MANIFEST_FILENAME).read_bytes())
            shutil.copytree(directory, Path(tmp) / manifest.name)
            models[manifest.name] = manifest
        env = {
            "EDGE_MAX_BATCH_IMAGES": str(max(args.sizes)),
            "EDGE_LOG_LEVEL": "WARNING",
            "EDGE_MAX_PENDING_PREDICTIONS": "8",
        }
        if args.chunk:
            env["EDGE_BATCH_CHUNK"] = str(args.chunk)
        with service_server(Path(tmp), env=env, uvicorn_args=("--no-access-log",), timeout=180) as server:
            rows = measure_http(server.url, models, tuple(args.sizes), args.rounds, args.seconds)
    results["rows"] = [asdict(r) for r in rows]
    results["machine_after"] = {"loadavg": os.getloadavg()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["machine"]))
    print(markdown(rows))


if __name__ == "__main__":
    main()
