"""Warm, in-process inference: Keras vs ONNX Runtime fp32 vs ONNX Runtime int8, side by side.

Every format runs the same real preprocessed images. Per-image latency is measured call by
call at batch 1; throughput (images/s) at batch 1 and at a larger batch. ONNX Runtime uses the
service's own session options (``service.engine.registry.session_options``); Keras is timed both as a
direct call (``model(x, training=False)``, its fastest eager path) and as ``model.predict``,
which the tutorials and the baseline server use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from benchmarks.models import BenchModel
from service.engine.cpus import visible_cpus
from service.engine.registry import session_options
from tests.harness.stats import percentile


@dataclass
class Timing:
    calls: int  # batch-1 calls timed
    per_image_p50_ms: float
    per_image_p99_ms: float
    throughput_batch1: float  # images/s
    throughput_batch: float  # images/s at ``batch_size``
    batch_size: int


# Each measurement stops after this many seconds once it has MIN_CALLS samples, so slow
# formats (Keras predict on ResNet50: ~0.3 s a call here) do not stretch the run to hours.
TIME_BUDGET_S = 20.0
MIN_CALLS = 10


def _time_calls(run: Callable[[np.ndarray], object], inputs: list[np.ndarray], repeats: int) -> list[float]:
    for x in inputs[:3]:  # warm-up: first calls allocate and pick kernels
        run(x)
    times: list[float] = []
    deadline = time.perf_counter() + TIME_BUDGET_S
    for i in range(repeats):
        if len(times) >= MIN_CALLS and time.perf_counter() > deadline:
            break
        x = inputs[i % len(inputs)]
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return times


def measure(
    run: Callable[[np.ndarray], object], batch: np.ndarray, repeats: int, batch_repeats: int
) -> Timing:
    singles = [batch[i : i + 1] for i in range(len(batch))]
    per_image = _time_calls(run, singles, repeats)
    batched = _time_calls(run, [batch], batch_repeats)
    return Timing(
        calls=len(per_image),
        per_image_p50_ms=percentile(per_image, 50) * 1000,
        per_image_p99_ms=percentile(per_image, 99) * 1000,
        throughput_batch1=1.0 / float(np.mean(per_image)),
        throughput_batch=len(batch) / float(np.mean(batched)),
        batch_size=len(batch),
    )


def onnx_runner(path, input_name: str, output_name: str) -> Callable[[np.ndarray], object]:
    session = ort.InferenceSession(
        str(path), sess_options=session_options(visible_cpus()), providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run([output_name], {input_name: x})


def keras_runners(path) -> dict[str, Callable[[np.ndarray], object]]:
    import keras

    model = keras.models.load_model(path)
    return {
        "keras_call": lambda x: model(x, training=False),
        "keras_predict": lambda x: model.predict(x, verbose=0),
    }


def run_model(model: BenchModel, repeats: int, batch_repeats: int) -> dict[str, Timing]:
    """Timings per format present: ``onnx_int8``, ``onnx_fp32``, ``keras_call``, ``keras_predict``."""
    runners = {
        "onnx_int8": onnx_runner(model.int8_path, model.manifest.input.name, model.manifest.output.name)
    }
    if model.fp32_path is not None:
        runners["onnx_fp32"] = onnx_runner(
            model.fp32_path, model.manifest.input.name, model.manifest.output.name
        )
    if model.keras_path is not None:
        runners.update(keras_runners(model.keras_path))
    return {name: measure(run, model.batch, repeats, batch_repeats) for name, run in runners.items()}
