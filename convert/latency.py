"""Per-image latency of Keras vs ONNX fp32 vs ONNX int8, measured side by side in one run.

The three engines are timed round-robin on the same images (batch of one), so background load
on a shared machine hits all three alike. ONNX sessions use the service's own session options.
These are indicative numbers for the conversion report; speed targets live in ``benchmarks/``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.engine.cpus import visible_cpus
from service.engine.registry import session_options


def _run_onnx(session: ort.InferenceSession, input_name: str, x: np.ndarray) -> Any:
    return session.run(None, {input_name: x})[0]


def side_by_side(
    source: Callable[[np.ndarray], Any],
    fp32_path: Path,
    int8_path: Path,
    images: np.ndarray,
    runs: int = 30,
    warmup: int = 3,
    source_key: str = "keras",
) -> dict[str, float]:
    """p50 / p90 milliseconds per image for each engine.

    Args:
        source: the source model as a call on a batch of one (a Keras model called directly,
            ``training=False``: no ``predict`` overhead); its keys use ``source_key``.
        fp32_path / int8_path: the ONNX models.
        images: float32 (N, ...) preprocessed inputs in the model's layout; image ``i % N``
            is used in run ``i``.
        runs: timed inferences per engine; warmup: untimed ones first.

    Returns:
        ``{"latency_ms_p50_keras": ..., "latency_ms_p90_onnx_int8": ..., "latency_threads": n}``.
    """
    options = session_options(visible_cpus())
    sessions = {
        "onnx_fp32": ort.InferenceSession(str(fp32_path), options, providers=["CPUExecutionProvider"]),
        "onnx_int8": ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"]),
    }
    engines: dict[str, Callable[[np.ndarray], Any]] = {source_key: source}
    for key, session in sessions.items():
        engines[key] = functools.partial(_run_onnx, session, session.get_inputs()[0].name)
    timings: dict[str, list[float]] = {key: [] for key in engines}
    for i in range(warmup + runs):
        x = images[i % len(images)][np.newaxis]
        for key, run in engines.items():
            started = time.perf_counter()
            run(x)
            if i >= warmup:
                timings[key].append((time.perf_counter() - started) * 1000.0)
    result: dict[str, float] = {}
    for key, values in timings.items():
        result[f"latency_ms_p50_{key}"] = round(float(np.percentile(values, 50)), 2)
        result[f"latency_ms_p90_{key}"] = round(float(np.percentile(values, 90)), 2)
    result["latency_runs"] = runs
    result["latency_threads"] = visible_cpus()
    return result
