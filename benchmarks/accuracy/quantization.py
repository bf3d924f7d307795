"""Quantization sweep: every model family, several int8 formats, accuracy and batch-1 latency.

    .venv/bin/python -m benchmarks.accuracy.quantization --models-dir DIR [--family mnist ...]

``DIR/<family>/<family>.fp32.onnx`` are the fp32 exports of ``python -m convert ... --out
DIR/<family>`` (``make models`` writes them to build/models/). For each family and variant the
fp32 model is quantized with ``convert.quantize`` on the family recipe's own calibration images,
then evaluated on its recipe's evaluation data, preprocessed as served:

- digits (``mnist``): the 10,000 MNIST test digits; 1,024 calibration digits;
- ``cats_vs_dogs``: the held-out photos (40 %, seed 1234, the build's split);
- ``mobilenet_0.75``: the 1,000 ImageNet val images, offline weights; 256 calibration images;
- ``resnet50`` / ``mobilenet_v2``: random weights offline, so latency and fp32 agreement only.

Latency: p50 of batch-1 runs, ``--threads`` intra-op threads (default 2), ``ORT_ENABLE_ALL``,
all variants of a family timed round-robin in the same loop (background load hits all alike).

Other instruction sets: ``--int8-dir`` keeps the quantized files and preprocessed arrays, so a
second run can evaluate the *same* files under an emulated CPU without re-quantizing, e.g.
``qemu-x86_64-static -cpu Haswell .venv/bin/python -m benchmarks.accuracy.quantization --reuse
--no-latency --emulated "qemu-x86_64 -cpu Haswell (AVX2, no VNNI)"`` (user-mode QEMU executes
ONNX Runtime's AVX2 kernels; it does not emulate AVX-512, so MLAS takes the AVX2 path).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from convert import evaluate
from convert.calibration import ArrayCalibrationReader
from convert.cpu import cpu_info, describe, int8_kernels
from convert.onnx_export import INPUT_NAME
from convert.quantize import QuantizationConfig, quantize
from tests.harness.paths import BUILD, BUILD_MODELS, KERAS_WEIGHTS, MNIST_NPZ
from tests.harness.stats import percentile

# Variant name -> changes to the family's chosen config (its excluded operators are kept). Every
# variant sets all the fields the variants differ in, so the family's default does not leak in.
_PLAIN = {"reduce_range": False, "float_edges": False, "calibration": "minmax", "bias_correction": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "U8U8 per-channel": {**_PLAIN, "weight_type": "uint8"},
    "U8S8 per-channel": {**_PLAIN, "weight_type": "int8"},
    "U8S8 per-channel reduce_range": {**_PLAIN, "weight_type": "int8", "reduce_range": True},
    "U8S8 per-channel reduce_range, float edges": {
        **_PLAIN,
        "weight_type": "int8",
        "reduce_range": True,
        "float_edges": True,
    },
    "U8S8 per-channel reduce_range, percentile 99.999": {
        **_PLAIN,
        "weight_type": "int8",
        "reduce_range": True,
        "calibration": "percentile",
        "percentile": 99.999,
    },
    "U8S8 per-channel reduce_range, entropy": {
        **_PLAIN,
        "weight_type": "int8",
        "reduce_range": True,
        "calibration": "entropy",
    },
    "U8S8 per-channel, bias correction": {**_PLAIN, "weight_type": "int8", "bias_correction": True},
    "U8S8 per-channel reduce_range, bias correction": {
        **_PLAIN,
        "weight_type": "int8",
        "reduce_range": True,
        "bias_correction": True,
    },
}
LATENCY_ONLY_VARIANTS = (
    "U8U8 per-channel",
    "U8S8 per-channel",
    "U8S8 per-channel reduce_range",
    "U8S8 per-channel reduce_range, bias correction",
)


@dataclass(frozen=True)
class Family:
    """One model family in the sweep: its recipe (for data) and whether accuracy is real."""

    name: str
    recipe: Callable[[], Any]
    real_accuracy: bool = True
    metric: str = "top-1"


def _families() -> dict[str, Family]:
    from convert import cats_vs_dogs, keras_apps, mnist

    weights = KERAS_WEIGHTS / "mobilenet_0.75_224.h5"
    return {
        "mnist": Family(
            "mnist",
            lambda: mnist.DigitRecipe(data=MNIST_NPZ, calibration_count=1024),
        ),
        "cats_vs_dogs": Family(
            "cats_vs_dogs",
            lambda: cats_vs_dogs.CatsDogsRecipe(
                backbone_weights=str(cats_vs_dogs.BACKBONE_H5), validation_fraction=0.4, seed=1234
            ),
        ),
        "mobilenet_0.75": Family(
            "mobilenet_0.75",
            lambda: keras_apps.KerasAppRecipe(
                "mobilenet", str(weights), alpha=0.75, calibration_count=256, eval_images=1000
            ),
        ),
        "resnet50": Family(
            "resnet50",
            lambda: keras_apps.KerasAppRecipe("resnet50", "none", calibration_count=32, eval_images=100),
            real_accuracy=False,
        ),
        "mobilenet_v2": Family(
            "mobilenet_v2",
            lambda: keras_apps.KerasAppRecipe("mobilenet_v2", "none", calibration_count=32, eval_images=100),
            real_accuracy=False,
        ),
    }


def _data(family: Family, cache: Path, reuse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibration images, evaluation images, labels), cached as .npy in ``cache``."""
    files = [cache / f"{family.name}.{part}.npy" for part in ("calib", "eval", "labels")]
    if reuse and all(f.is_file() for f in files):
        calib, images, labels = (np.load(f) for f in files)
        return calib, images, labels
    recipe = family.recipe()
    calib = recipe.calibration_images()
    images, labels = recipe.evaluation_data()
    cache.mkdir(parents=True, exist_ok=True)
    for file, array in zip(files, (calib, images, labels), strict=True):
        np.save(file, array)
    return calib, images, labels


def _default_config(name: str) -> QuantizationConfig:
    from convert import cats_vs_dogs, keras_apps, mnist

    if name == "mnist":
        return mnist.DEFAULT_QUANTIZATION
    if name == "cats_vs_dogs":
        return cats_vs_dogs.DEFAULT_QUANTIZATION
    return keras_apps.default_quantization(name)


def saturation_probe() -> dict[str, Any]:
    """Which u8 x s8 kernel ONNX Runtime runs on this CPU, observed rather than assumed.

    One ``MatMulInteger``: 255 (uint8) x 127 (int8) summed over K = 64. Exact: 2,072,640. AVX2's
    ``vpmaddubsw`` adds adjacent u8 x s8 products into saturating int16 (max 32,767 per pair),
    giving 32 x 32,767 = 1,048,544; VNNI (``vpdpbusd``), AMX and arm64 dot products accumulate
    in int32 and give the exact value.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    k = 64
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "saturation_probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 16])],
        [helper.make_tensor("b", TensorProto.INT8, [k, 16], [127] * (k * 16))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = int(session.run(None, {"a": np.full((1, k), 255, np.uint8)})[0][0, 0])
    exact = 255 * 127 * k
    return {"u8s8_dot_255x127x64": got, "exact": exact, "saturates": got != exact}


def _slug(variant: str) -> str:
    return variant.replace(" ", "_").replace(",", "")


def p50_round_robin(paths: dict[str, Path], image: np.ndarray, runs: int, threads: int) -> dict[str, float]:
    """Batch-1 p50 ms of each model, timed round-robin in one loop after 10 warm-up runs each."""
    sessions = {key: evaluate.onnx_session(path, threads) for key, path in paths.items()}
    feed = {INPUT_NAME: image}
    times: dict[str, list[float]] = {key: [] for key in sessions}
    for i in range(10 + runs):
        for key, session in sessions.items():
            started = time.perf_counter()
            session.run(None, feed)
            if i >= 10:
                times[key].append((time.perf_counter() - started) * 1000.0)
    return {key: percentile(values, 50) for key, values in times.items()}


def sweep_family(family: Family, args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per variant (fp32 first): accuracy, agreement with fp32, p50 latency."""
    fp32_path = args.models_dir / family.name / f"{family.name}.fp32.onnx"
    if not fp32_path.is_file():
        print(f"[{family.name}] skipped: {fp32_path} not found", flush=True)
        return []
    cache = args.int8_dir / family.name
    calib, images, labels = _data(family, cache, args.reuse)
    images, labels = images[:: args.eval_stride], labels[:: args.eval_stride]
    if args.eval_limit:
        images, labels = images[: args.eval_limit], labels[: args.eval_limit]
    names = list(VARIANTS) if family.real_accuracy else list(LATENCY_ONLY_VARIANTS)
    names = [n for n in names if not args.variant or n in args.variant]
    paths = {"fp32": fp32_path}
    base = _default_config(family.name)
    for name in names:
        path = cache / f"{_slug(name)}.int8.onnx"
        if not (args.reuse and path.is_file()):
            config = replace(base, **VARIANTS[name], calibration_images=0)
            started = time.perf_counter()
            quantize(fp32_path, path, ArrayCalibrationReader(calib, INPUT_NAME), config)
            print(f"[{family.name}] {name}: quantized in {time.perf_counter() - started:.0f} s", flush=True)
        paths[name] = path
    outputs = {key: evaluate.onnx_predict(evaluate.onnx_session(p), images, 32) for key, p in paths.items()}
    native = {key: cache / f"{_slug(key)}.native_outputs.npy" for key in paths}
    if not args.emulated and not args.eval_limit and args.eval_stride == 1:
        for key, out in outputs.items():  # the reference an emulated run compares itself with
            np.save(native[key], out)
    latency = {} if args.no_latency else p50_round_robin(paths, images[:1], args.runs, args.threads)
    rows = []
    for key, out in outputs.items():
        row: dict[str, Any] = {"family": family.name, "variant": key, "images": int(len(images))}
        if family.real_accuracy:
            row["accuracy"] = evaluate.top1_accuracy(out, labels)
        row["top1_agreement_with_fp32"] = evaluate.top1_agreement(outputs["fp32"], out)
        if args.emulated and native[key].is_file():
            same = np.load(native[key])[:: args.eval_stride][: len(out)]
            row["top1_agreement_with_native"] = evaluate.top1_agreement(same, out)
            row["max_abs_delta_vs_native"] = evaluate.max_abs_diff(same, out)
        if latency:
            row["p50_ms"] = round(latency[key], 3)
            row["speedup_vs_fp32"] = round(latency["fp32"] / latency[key], 2)
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table: family | variant | accuracy (delta pp vs fp32) | agreement | p50 | speed-up."""
    lines = [
        "| model | variant | images | accuracy (Δ pp vs fp32) | top-1 agreement with fp32 | p50 ms | ×fp32 "
        "| same top-1 as native (max abs Δ) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fp32 = {r["family"]: r for r in rows if r["variant"] == "fp32"}
    for r in rows:
        accuracy = "-"
        if "accuracy" in r:
            delta = (r["accuracy"] - fp32[r["family"]]["accuracy"]) * 100
            accuracy = f"{r['accuracy']:.4f}" + ("" if r["variant"] == "fp32" else f" ({delta:+.2f})")
        p50 = f"{r['p50_ms']:.2f}" if "p50_ms" in r else "-"
        speedup = f"{r['speedup_vs_fp32']:.2f}" if "speedup_vs_fp32" in r else "-"
        native = "-"
        if "top1_agreement_with_native" in r:
            native = f"{r['top1_agreement_with_native']:.4f} ({r['max_abs_delta_vs_native']:.3f})"
        lines.append(
            f"| {r['family']} | {r['variant']} | {r['images']} | {accuracy} | "
            f"{r['top1_agreement_with_fp32']:.4f} | {p50} | {speedup} | {native} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, default_families: tuple[str, ...] | None = None) -> None:
    families = _families()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=BUILD_MODELS)
    parser.add_argument("--family", nargs="*", choices=sorted(families), default=default_families)
    parser.add_argument("--variant", nargs="*", choices=sorted(VARIANTS), default=None)
    parser.add_argument("--int8-dir", type=Path, default=BUILD / "quantization_sweep")
    parser.add_argument("--reuse", action="store_true", help="reuse quantized files and cached arrays")
    parser.add_argument("--eval-limit", type=int, default=0, help="first N evaluation images (0 = all)")
    parser.add_argument(
        "--eval-stride", type=int, default=1, help="every Kth evaluation image (class-sorted data)"
    )
    parser.add_argument("--runs", type=int, default=200, help="timed batch-1 runs per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--emulated", default=None, help="the CPU an emulator presents (recorded)")
    parser.add_argument(
        "--emulated-flags",
        nargs="*",
        default=("avx2",),
        help="its int8 ISA flags (qemu-user's /proc/cpuinfo shows the host's): default avx2",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and CPU as JSON")
    args = parser.parse_args(argv)

    cpu = cpu_info(emulated=args.emulated)
    if args.emulated:
        flags = list(args.emulated_flags)
        cpu = {"model": args.emulated, "machine": cpu["machine"], "int8_flags": flags,
               "int8_kernels": int8_kernels(flags), "emulated": args.emulated, "host": cpu}  # fmt: skip
    cpu["u8s8_probe"] = saturation_probe()
    print(f"CPU: {describe(cpu)}; ORT threads {args.threads}, ORT_ENABLE_ALL, batch 1", flush=True)
    print(f"u8 x s8 probe: {cpu['u8s8_probe']}\n", flush=True)
    rows: list[dict[str, Any]] = []
    for name in args.family or list(families):
        rows += sweep_family(families[name], args)
    print("\n" + markdown(rows), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cpu": cpu, "threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
