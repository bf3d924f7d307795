"""Run every benchmark and write JSON, a markdown table and a PNG chart.

    make bench                     # installs what it needs, builds the package, runs this
    python -m benchmarks [--model models_onnx/NAME ...] [--runs 5] [--requests 200]

Needs the Lambda package built by ``make package`` (``build/lambda/x86_64/``) and, for the
baseline, TensorFlow (the ``convert`` extra). Results: ``benchmarks/results/results.json``,
``results.md`` and ``chart.png``; the tables are also written into ``benchmarks/README.md``, the
headline table into the project README (the documentation site renders its page from results.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.decision import top1
from benchmarks.http import http_latency, http_sizes
from benchmarks.in_process import warm
from benchmarks.installed import baseline_bytes, tree_bytes
from benchmarks.models import BenchModel, discover
from benchmarks.startup import cold_start
from infra.package import DEFAULT_OUT, TARGET_UNZIPPED_BYTES, default_model_dirs, find_python
from service.engine.cpus import visible_cpus
from service.engine.pipeline import EncodedImages, classify
from service.engine.registry import load_model
from service.images.preprocessing import preprocess
from service.manifest import MANIFEST_FILENAME
from tests.harness import report
from tests.harness.paths import BENCH_BUILD, BUILD_MODELS
from tests.harness.servers import free_port
from tests.harness.stats import percentile

RESULTS = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent / "README.md"
PROJECT_README = README.parent.parent / "README.md"
# Spawn -> first prediction targets (issue 4), seconds; the digit model has its own.
COLD_TARGET_S = {"mnist": 0.5}
COLD_TARGET_DEFAULT_S = 1.0
SPEEDUP_TARGET = 20.0  # issue 11: every model >= 20x faster than the TF baseline


# ISA flags that decide which int8 kernels ONNX Runtime runs (u8 x s8 saturation on AVX2 only).
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_record() -> dict:
    """CPU model and the int8-relevant ISA flags, so every int8-vs-fp32 number names its CPU.

    ``convert.cpu.cpu_info`` (the conversion report's record) when present, else read here.
    """
    try:
        from convert.cpu import cpu_info  # type: ignore[import-not-found]

        return cpu_info()
    except ImportError:
        pass
    model, flags = "", set()
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []:
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key.strip().lower() in ("flags", "features"):
            flags |= set(value.split())
    return {
        "model": model or platform.processor() or "unknown",
        "machine": platform.machine(),
        "int8_flags": [f for f in INT8_FLAGS if f in flags],
    }


def multipart_event(name: str, upload: bytes, upload_name: str) -> dict:
    """An API Gateway HTTP API (2.0) event POSTing ``upload`` to the model's predict route."""
    from tests.harness.lambda_events import http_api_v2_event

    request = httpx.Request(
        "POST", "https://example.invalid/", files={"file": (upload_name, upload, "image/jpeg")}
    )
    return http_api_v2_event(f"/models/{name}/predict", request.read(), request.headers["content-type"])


def expected_labels(model: BenchModel) -> dict[str, str]:
    """The class each format predicts in-process for the upload (what a served answer must say)."""
    loaded = load_model(model.directory / MANIFEST_FILENAME, visible_cpus())
    (outcome,) = classify(loaded, EncodedImages([model.upload]), 1, max_pixels=10**9).outcomes
    assert outcome.ranking is not None, outcome.error
    labels = {"onnx_int8": outcome.ranking[0].label}
    if model.keras_path is not None:
        import keras

        keras_model = keras.models.load_model(model.keras_path)
        x = preprocess(Image.open(io.BytesIO(model.upload)), model.manifest)
        labels["keras"] = model.manifest.labels[top1(keras_model.predict(x, verbose=0)[0], model.manifest)[0]]
    return labels


def served_copy(package_dir: Path, model: BenchModel) -> Path:
    """A model directory holding only ``model`` (from the package), so each server loads one model."""
    target = BENCH_BUILD / "served" / model.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(package_dir / "models_onnx" / model.directory.name, target / model.directory.name)
    return target


def run(args: argparse.Namespace) -> dict:
    base = args.package
    size_report = json.loads((base / "size-report.json").read_text())
    package_dir, server_dir = base / "package", base / "server"
    python = find_python(size_report["python_version"])
    if python is None or not server_dir.is_dir():
        raise SystemExit(f"need Python {size_report['python_version']} and {server_dir} (make package)")
    # By default every model in the package: the served files, as they ship.
    model_dirs = args.model or default_model_dirs(package_dir / "models_onnx")
    models = discover(
        model_dirs, build_models=tuple(args.build_models or [BUILD_MODELS]), batch_size=args.batch
    )
    runtime_bytes = size_report["unzipped_bytes"] - sum(size_report["models"].values())
    server_bytes = tree_bytes(server_dir)
    load_before = os.getloadavg()
    results: dict = {"models": {}}
    for model in models:
        print(f"[{model.name}] expected predictions", flush=True)
        expected = expected_labels(model)
        served = served_copy(package_dir, model)
        event_path = BENCH_BUILD / f"{model.name}.event.json"
        event_path.write_text(json.dumps(multipart_event(model.name, model.upload, model.upload_name)))
        launches = [
            cold_start.lambda_launch(python, package_dir, served, event_path),
            cold_start.uvicorn_launch(python, package_dir, server_dir, served, model.name),
        ]
        if model.keras_path is not None and not args.skip_baseline:
            launches.append(cold_start.baseline_launch(model.keras_path, model.directory / MANIFEST_FILENAME))
        packaged = package_dir / "models_onnx" / model.directory.name
        onnx_path = packaged / json.loads((packaged / MANIFEST_FILENAME).read_text())["file"]
        launches += cold_start.floor_launches(python, package_dir, onnx_path)
        want = {
            "lambda": expected["onnx_int8"],
            "uvicorn": expected["onnx_int8"],
            "tf_baseline": expected.get("keras", ""),
        }
        series = {launch.variant: [] for launch in launches}
        for round_ in range(args.runs + 1):  # round 0 warms the page cache and is discarded
            for launch in launches:
                sample = cold_start.run_once(
                    launch, model.upload, model.upload_name, want.get(launch.variant, ""), free_port()
                )
                print(
                    f"[{model.name}] cold {launch.variant} run {round_}: {sample.seconds:.3f} s", flush=True
                )
                if round_:
                    series[launch.variant].append(sample)
        model_bytes = size_report["models"].get(model.name, tree_bytes(model.directory))
        installed = {
            "lambda": runtime_bytes + model_bytes,
            "uvicorn": runtime_bytes + server_bytes + model_bytes,
        }
        if model.keras_path is not None:
            installed["tf_baseline"] = baseline_bytes() + model.keras_path.stat().st_size
        cold = {
            variant: {
                "p50_s": percentile([s.seconds for s in samples], 50),
                "p90_s": percentile([s.seconds for s in samples], 90),
                "runs_s": [round(s.seconds, 4) for s in samples],
                "cpu_p50_s": percentile([s.cpu_seconds for s in samples], 50),
                "phases_p50_s": {
                    phase: percentile([s.phases_s[phase] for s in samples], 50)
                    for phase in samples[0].phases_s
                },
                "peak_rss_mb": percentile([s.peak_rss_bytes for s in samples], 50) / 1e6,
                "installed_mb": installed.get(variant, 0) / 1e6,
            }
            for variant, samples in series.items()
        }

        print(f"[{model.name}] warm in-process", flush=True)
        timings = warm.run_model(model, args.repeats, args.batch_repeats)

        print(f"[{model.name}] HTTP latency", flush=True)
        http = {}
        sizes = batch_http = None
        for launch in [la for la in launches if la.predict_path]:
            with http_latency.serve(launch, free_port()) as server:
                latency = http_latency.measure(
                    f"{server.url}{launch.predict_path}", model.upload, model.upload_name, args.requests
                )
                if launch.variant == "uvicorn" and args.batch_images:
                    print(f"[{model.name}] HTTP batch request", flush=True)
                    batch_http = http_latency.measure_batch(
                        f"{server.url}{launch.predict_path}/batch",
                        model.upload,
                        model.upload_name,
                        args.batch_images,
                        max(10, args.requests // 4),
                    )
                if launch.variant == "uvicorn" and args.size_requests:
                    print(f"[{model.name}] HTTP latency by upload size", flush=True)
                    sizes = http_sizes.measure(
                        f"{server.url}{launch.predict_path}",
                        http_sizes.same_photo_sizes(),
                        args.size_requests,
                    )
            http[launch.variant] = asdict(latency)

        results["models"][model.name] = {
            "upload": model.upload_name,
            "keras_model": model.keras_note,
            "expected": expected,
            "cold_start": cold,
            "warm": {name: asdict(t) for name, t in timings.items()},
            "http": http,
            "http_sizes": sizes,
            "http_batch": batch_http,
        }
    results["meta"] = {
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs ({visible_cpus()} usable), "
        f"{platform.platform()}",
        "cpu": cpu_record(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "runs": args.runs,
        "requests": args.requests,
        "repeats": args.repeats,
        "batch": args.batch,
        "lambda_python": python,
        "baseline_python": sys.executable,
        "package": {k: size_report[k] for k in ("zip", "zipped_bytes", "unzipped_bytes", "models", "arch")},
        "package_target_bytes": TARGET_UNZIPPED_BYTES,
    }
    results["targets"] = report.targets(results, COLD_TARGET_S, COLD_TARGET_DEFAULT_S, SPEEDUP_TARGET)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        metavar="DIR",
        help="model directory (manifest.json + int8 .onnx); repeatable "
        "(default: every model in the package's models_onnx/)",
    )
    parser.add_argument(
        "--package",
        type=Path,
        default=DEFAULT_OUT / "x86_64",
        help="package build directory (with package/, server/, size-report.json)",
    )
    parser.add_argument(
        "--build-models",
        type=Path,
        action="append",
        metavar="DIR",
        help="where <name>/<name>.keras and .fp32.onnx are (python -m convert --out); repeatable "
        "(default: build/models)",
    )
    parser.add_argument("--runs", type=int, default=5, help="cold starts per variant and model")
    parser.add_argument("--requests", type=int, default=200, help="HTTP requests per model and server")
    parser.add_argument(
        "--size-requests",
        type=int,
        default=40,
        help="HTTP requests per upload size (500x375 ... 12 MP, benchmarks/http/http_sizes.py); 0 = skip",
    )
    parser.add_argument(
        "--batch-images",
        type=int,
        default=8,
        help="images in the HTTP batch request (POST /models/{name}/predict/batch); 0 = skip",
    )
    parser.add_argument("--repeats", type=int, default=200, help="warm batch-1 calls per format")
    parser.add_argument("--batch", type=int, default=32, help="the larger batch size")
    parser.add_argument("--batch-repeats", type=int, default=10)
    parser.add_argument("--skip-baseline", action="store_true", help="no TensorFlow runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--report-only", action="store_true", help="re-render the table and chart from <out>/results.json"
    )
    args = parser.parse_args(argv)
    results = json.loads((args.out / "results.json").read_text()) if args.report_only else run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    chart = report.chart(results, args.out / "chart.png")
    table = report.markdown(
        results, chart.relative_to(README.parent) if chart.is_relative_to(README.parent) else chart
    )
    (args.out / "results.md").write_text(table)
    if args.out.resolve() == RESULTS.resolve():
        report.update_readme(README, table)
        report.update_readme(
            PROJECT_README, report.headline(results), report.HEADLINE_START, report.HEADLINE_END
        )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
