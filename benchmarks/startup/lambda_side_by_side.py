"""Lambda init + first invocation of this checkout beside another, interleaved run by run.

    python -m benchmarks.startup.lambda_side_by_side --baseline-root ../main --runs 20

Each run is a fresh interpreter set up as a Lambda environment (function name, 1,769 MB, the
bundled digit model, warnings-only logs) that imports ``service.lambda_handler`` (the init phase:
imports, app, models) and sends one real API Gateway HTTP API event with a PNG. Reports p50 ms of
both phases per checkout, and whether ``service.engine.dynamic_batching`` was imported (it must not be
on Lambda). Not the packaged cold start of ``benchmarks/startup/cold_start.py`` (that needs
``make package``); the same source trees on the same interpreter, so only the code differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.output import emit
from tests.harness import lambda_events
from tests.harness.paths import PROJECT_ROOT
from tests.harness.stats import percentile

# The event builders are this checkout's, loaded by path (argv[1]): the other checkout's tests/
# may be laid out differently, and only service/ is to differ between the two.
CHILD = r"""
import time; t0 = time.perf_counter()
import importlib.util, io, json, sys
spec = importlib.util.spec_from_file_location("lambda_events", sys.argv[1])
events = importlib.util.module_from_spec(spec); sys.modules["lambda_events"] = events
spec.loader.exec_module(events)
import service.lambda_handler as lh
t1 = time.perf_counter()
from PIL import Image
buf = io.BytesIO(); Image.new("L", (28, 28), 0).save(buf, "PNG")
r = lh.handler(events.http_api_v2_event("/predict", buf.getvalue(), "image/png"), events.LambdaContext())
t2 = time.perf_counter()
print(json.dumps({"init_ms": (t1 - t0) * 1000, "first_ms": (t2 - t1) * 1000, "status": r["statusCode"],
                  "batcher_imported": "service.engine.dynamic_batching" in sys.modules}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-root", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    roots = {"this": PROJECT_ROOT, "baseline": args.baseline_root.resolve()}
    samples: dict[str, list[dict]] = {name: [] for name in roots}
    for _ in range(args.runs):
        for name, root in roots.items():
            env = {
                **os.environ,
                "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
                "EDGE_LOG_LEVEL": "WARNING",
                "EDGE_MODEL_DIR": str(root / "models_onnx"),
            }
            done = subprocess.run(
                [sys.executable, "-c", CHILD, lambda_events.__file__],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {
        "command": " ".join(
            [
                "python -m benchmarks.startup.lambda_side_by_side",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "load_average": os.getloadavg(),
        **{
            name: {
                "init_p50_ms": round(percentile([s["init_ms"] for s in runs], 50), 1),
                "first_invocation_p50_ms": round(percentile([s["first_ms"] for s in runs], 50), 1),
                "statuses": sorted({s["status"] for s in runs}),
                "batcher_imported": any(s["batcher_imported"] for s in runs),
            }
            for name, runs in samples.items()
        },
    }
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
