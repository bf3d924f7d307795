"""Sweep int8 quantization settings for the digit model; the table behind its chosen config.

    .venv/bin/python -m benchmarks.quantization_mnist [--fp32 build/models/mnist/mnist.fp32.onnx]

For each setting: accuracy on the 10,000 MNIST test digits (through the service's own
preprocessing, as served), top-1 agreement and max |Δprob| against the fp32 model, and the
batch-1 latency p50 measured in the same run. Needs the fp32 model from ``make models``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from convert import evaluate, mnist
from convert.calibration import ArrayCalibrationReader
from convert.onnx_export import INPUT_NAME
from convert.quantize import QuantizationConfig, quantize

from .paths import MNIST_NPZ
from .stats import percentile

SETTINGS = {
    "per-channel U8S8 min-max": QuantizationConfig(calibration="minmax"),
    "per-channel U8S8 min-max, 7-bit weights": QuantizationConfig.x86_u8s8_reduced(calibration="minmax"),
    "per-channel U8U8 min-max": QuantizationConfig(calibration="minmax", weight_type="uint8"),
    "per-tensor U8S8 entropy": QuantizationConfig(calibration="entropy", per_channel=False),
    "per-tensor U8U8 entropy": QuantizationConfig(
        calibration="entropy", per_channel=False, weight_type="uint8"
    ),
}


def batch1_p50_ms(path: Path, image: np.ndarray, runs: int = 300) -> float:
    session = evaluate.onnx_session(path)
    feed = {INPUT_NAME: image}
    for _ in range(20):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fp32", type=Path, default=Path("build/models/mnist/mnist.fp32.onnx"))
    parser.add_argument("--data", type=Path, default=MNIST_NPZ)
    parser.add_argument("--calibration-images", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    x_train, _, x_test, y_test = mnist.load_mnist(args.data)
    rng = np.random.default_rng(args.seed)
    calibration = mnist.to_model_input(x_train[rng.permutation(len(x_train))[: args.calibration_images]])
    test = mnist.to_model_input(x_test)
    fp32 = evaluate.onnx_predict(evaluate.onnx_session(args.fp32), test)
    print(f"fp32: accuracy {evaluate.top1_accuracy(fp32, y_test):.4f}, batch-1 p50 "
          f"{batch1_p50_ms(args.fp32, test[:1]):.3f} ms\n")  # fmt: skip
    print("| setting | accuracy | top-1 agreement | max abs dprob | batch-1 p50 ms |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in SETTINGS.items():
            path = quantize(
                args.fp32, Path(tmp) / "int8.onnx", ArrayCalibrationReader(calibration, INPUT_NAME), config
            )
            int8 = evaluate.onnx_predict(evaluate.onnx_session(path), test)
            print(
                f"| {name} | {evaluate.top1_accuracy(int8, y_test):.4f} | "
                f"{evaluate.top1_agreement(fp32, int8):.4f} | {evaluate.max_abs_diff(fp32, int8):.3f} | "
                f"{batch1_p50_ms(path, test[:1]):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
