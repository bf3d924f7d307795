"""Container start -> first correct prediction, for both images, with podman on this machine.

    python -m benchmarks.startup.container_start [--runs 5] [--out benchmarks/results/container_start.json]

Images: ``infra/Dockerfile`` and ``infra/Dockerfile.lambda`` (target ``ric``) on Debian
bookworm, built by ``infra.containers`` from the package for Python 3.11 (models: those in
``build/lambda/x86_64-py3.11``, by default the bundled digit model). Each run starts a fresh
container (``podman run -d``, runc, host network, read-only root) and times:

- uvicorn image: until ``POST /models/mnist/predict`` with a real MNIST digit returns the right
  digit (polled every 20 ms; connection refusals while the server starts are retried);
- Lambda image: until awslambdaric inside the container has fetched an API Gateway event from a
  Runtime API on loopback (``tests.harness.runtime_api``) and posted a correct answer.

The clock starts before ``podman run`` (so it includes the runtime creating the container) and
stops at the answer. Image sizes are ``podman image inspect`` .Size (uncompressed).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from infra import containers
from tests.harness.lambda_events import http_api_v2_event, multipart
from tests.harness.paths import MNIST_NPZ, PROJECT_ROOT
from tests.harness.runtime_api import serve_runtime_api
from tests.harness.servers import free_port

DEFAULT_OUT = PROJECT_ROOT / "benchmarks" / "results" / "container_start.json"


def cpu_description() -> dict:
    """CPU model and the ISA flags that matter for int8 inference (from /proc/cpuinfo)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line), "?")
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []
    )
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma")
    return {"model": model, "isa": [f for f in wanted if f in flags]}


def first_mnist_digit() -> tuple[bytes, str]:
    """The first MNIST test digit as PNG bytes, and its label."""
    with np.load(MNIST_NPZ) as data:
        digit, label = data["x_test"][0], data["y_test"][0]
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, "PNG")
    return buffer.getvalue(), str(int(label))


def _running(name: str) -> bool:
    return (
        containers.podman("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        == "true"
    )


def server_start(tag: str, png: bytes, expected: str, timeout: float = 120.0) -> float:
    """Seconds from ``podman run`` to the first correct prediction over HTTP."""
    port, name = free_port(), "edge-infer-bench"
    containers.podman("rm", "-f", name, check=False)
    command = containers.run_command(
        "-d", "--name", name, "--read-only", "--network", "host", "--health-interval", "disable",
        "-e", "HOST=127.0.0.1", "-e", f"PORT={port}", tag,
    )  # fmt: skip
    started = time.perf_counter()
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
        url = f"http://127.0.0.1:{port}/models/mnist/predict"
        while time.perf_counter() - started < timeout:
            try:
                response = httpx.post(url, files={"file": ("d.png", png, "image/png")}, timeout=10)
                if response.status_code == 200 and response.json()["prediction"] == expected:
                    return time.perf_counter() - started
            except httpx.TransportError:
                if not _running(name):
                    break
            time.sleep(0.02)
        raise RuntimeError(
            f"no correct prediction from {tag}: {containers.podman('logs', name).stderr[-2000:]}"
        )
    finally:
        containers.podman("rm", "-f", "-t", "0", name, check=False)


def lambda_start(tag: str, event: dict, expected: str, timeout: float = 120.0) -> float:
    """Seconds from ``podman run`` to awslambdaric posting the first correct response."""
    name = "edge-infer-lambda-bench"
    containers.podman("rm", "-f", name, check=False)
    with serve_runtime_api() as (api, address):
        command = containers.run_command(
            "-d", "--name", name, "--read-only", "--network", "host",
            "-e", f"AWS_LAMBDA_RUNTIME_API={address}", "-e", "AWS_LAMBDA_FUNCTION_NAME=edge-infer",
            "-e", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=2048", "-e", "AWS_REGION=us-east-1", tag,
        )  # fmt: skip
        started = time.perf_counter()
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=timeout)
            kind, payload = api.invoke(event, timeout=timeout)
            elapsed = time.perf_counter() - started
            if kind != "response" or json.loads(payload["body"])["prediction"] != expected:
                raise RuntimeError(f"wrong answer from {tag}: {kind} {payload}")
            return elapsed
        finally:
            containers.podman("rm", "-f", "-t", "0", name, check=False)


def summarize(samples: list[float]) -> dict:
    return {
        "runs": len(samples),
        "p50_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
        "samples_s": [round(s, 3) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup.container_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if containers.missing_tools():
        parser.error(f"missing {containers.missing_tools()}: {containers.ENABLE_HINT}")

    server_tag, lambda_tag = containers.server_image(), containers.lambda_image()
    png, expected = first_mnist_digit()
    content_type, body = multipart(png)
    event = http_api_v2_event("/models/mnist/predict", body, content_type)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    server_times = [server_start(server_tag, png, expected) for _ in range(args.runs)]
    lambda_times = [lambda_start(lambda_tag, event, expected) for _ in range(args.runs)]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.startup.container_start " + " ".join(argv or []),
        "machine": f"{platform.machine()}, {cpu_description()}",
        "podman": containers.podman("--version").stdout.strip(),
        "load_average_before_after": [
            float(load_before),
            float(Path("/proc/loadavg").read_text().split()[0]),
        ],
        "models": sorted(
            p.name for p in (containers.debian_package() / "package" / "models_onnx").iterdir() if p.is_dir()
        ),
        "images": {
            "base": {"tag": containers.BASE_IMAGE, "bytes": containers.image_size(containers.BASE_IMAGE)},
            "server": {"tag": server_tag, "bytes": containers.image_size(server_tag)},
            "lambda": {"tag": lambda_tag, "bytes": containers.image_size(lambda_tag)},
        },
        "start_to_first_prediction": {"server": summarize(server_times), "lambda": summarize(lambda_times)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['machine']}; {result['podman']}; load {result['load_average_before_after']}")
    print("| image | size MB | start -> first prediction p50 s | min s | max s |")
    print("|---|---|---|---|---|")
    for kind in ("server", "lambda"):
        timing = result["start_to_first_prediction"][kind]
        size = result["images"][kind]["bytes"] / 1e6
        tag = result["images"][kind]["tag"]
        print(f"| {tag} | {size:.1f} | {timing['p50_s']} | {timing['min_s']} | {timing['max_s']} |")
    print(f"(base {containers.BASE_IMAGE}: {result['images']['base']['bytes'] / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
