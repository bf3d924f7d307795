"""Lambda cold start of two packages side by side: A and B alternate, one fresh process per run.

    python -m benchmarks.startup.cold_ab BEFORE_TASK_ROOT AFTER_TASK_ROOT [--runs 15] [--env K=V ...]

Each task root is an extracted Lambda package (``infra.package``'s ``package/`` folder, with
``models_onnx/`` inside). Each run is ``benchmarks/startup/lambda_cold.py`` in a Python that sees only
that package (``-I -S``): imports, init (app + model sessions) and the first invocation, an API
Gateway HTTP API event with a real MNIST digit JPEG (``benchmarks.startup.cold_start``). Runs alternate
A, B, A, B... so both see the same load on shared cores; CPU seconds are less sensitive to that
load than wall time. Prints p50 and p90 per phase and the ratio B / A of the p50s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import httpx

from benchmarks.models import _digits
from benchmarks.startup.cold_start import lambda_launch, run_once
from tests.harness.lambda_events import http_api_v2_event
from tests.harness.stats import percentile


def digit_event() -> tuple[dict, str]:
    """(event POSTing the first MNIST test digit as a JPEG to /models/mnist/predict, its label)."""
    import numpy as np

    from tests.harness.paths import MNIST_NPZ

    name, upload, _ = _digits(1)
    with np.load(MNIST_NPZ) as data:
        label = str(int(data["y_test"][0]))
    request = httpx.Request("POST", "https://example.invalid/", files={"file": (name, upload, "image/jpeg")})
    event = http_api_v2_event("/models/mnist/predict", request.read(), request.headers["content-type"])
    return event, label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.startup.cold_ab", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--runs", type=int, default=15, help="cold starts of each package")
    parser.add_argument("--python", default="python3.12", help="the Lambda runtime's interpreter")
    parser.add_argument("--env", action="append", default=[], metavar="K=V", help="extra variable, both runs")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    event, label = digit_event()
    samples: dict[str, list] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        event_path = Path(tmp) / "event.json"
        event_path.write_text(json.dumps(event))
        launches = {}
        for key in samples:
            root = getattr(args, key).resolve()
            launch = lambda_launch(args.python, root, root / "models_onnx", event_path)
            launch.env.update(extra)
            launches[key] = launch
        for _ in range(args.runs):
            for key, launch in launches.items():
                samples[key].append(run_once(launch, b"", "", label, 0))
    summary = {}
    for key, runs in samples.items():
        phases = {name: [s.phases_s[name] for s in runs] for name in runs[0].phases_s}
        summary[key] = {
            "wall_s": [s.seconds for s in runs],
            "cpu_s": [s.cpu_seconds for s in runs],
            "peak_rss_mb": [s.peak_rss_bytes / 2**20 for s in runs],
            **{f"{name}_s": values for name, values in phases.items()},
        }
    print(f"{'p50 (p90)':<16}{'before':>18}{'after':>18}{'after/before':>14}")
    for metric in summary["before"]:
        a, b = summary["before"][metric], summary["after"][metric]
        a50, b50 = percentile(a, 50), percentile(b, 50)
        cells = [f"{percentile(v, 50):.3f} ({percentile(v, 90):.3f})" for v in (a, b)]
        print(f"{metric:<16}{cells[0]:>18}{cells[1]:>18}{b50 / a50:>14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
