"""Accuracy and parity measurements for Keras models and their ONNX exports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.engine.inference import class_probabilities


def onnx_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session with all graph optimisations, like the service's (0 threads = ORT default)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(session: ort.InferenceSession, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs for float32 ``images`` (N, ...), run in batches; float32 (N, classes)."""
    name = session.get_inputs()[0].name
    outputs = [
        session.run(None, {name: images[i : i + batch_size]})[0] for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs)


def keras_predict(model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0))


def to_class_scores(outputs: np.ndarray) -> np.ndarray:
    """(N, classes) class probabilities for ranking, by the service's own routine
    (``service.engine.inference.class_probabilities``): a (N, 1) output is a sigmoid, (1 - p, p);
    anything else goes through softmax, which keeps the order of logits and of probabilities
    alike (the checks here compare rankings, not values)."""
    sigmoid = outputs.ndim == 2 and outputs.shape[1] == 1
    return class_probabilities(outputs, "sigmoid" if sigmoid else "logits")


def top1_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(to_class_scores(outputs), axis=1) == labels))


def topk_accuracy(outputs: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-to_class_scores(outputs), axis=1)[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows whose arg-max class is the same in ``a`` and ``b``."""
    return float(np.mean(np.argmax(to_class_scores(a), 1) == np.argmax(to_class_scores(b), 1)))


def validate(
    model: Any,
    fp32_path: Path,
    int8_path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    groups: Iterable[str],
    batch_size: int = 32,
) -> dict[str, Any]:
    """``validate_outputs`` for a Keras ``model`` (metrics only)."""

    def source(batch: np.ndarray) -> np.ndarray:
        return keras_predict(model, batch, batch_size=batch_size)

    metrics, _ = validate_outputs(source, fp32_path, int8_path, images, labels, groups, batch_size=batch_size)
    return metrics


def validate_outputs(
    source: Callable[[np.ndarray], np.ndarray],
    fp32_path: Path,
    int8_path: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    groups: Iterable[str],
    batch_size: int = 32,
    source_key: str = "keras",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The source model, ONNX fp32 and ONNX int8 run on the same images; the metrics ``groups``
    ask for, and the three engines' outputs (keys ``<source_key>_fp32``, ``onnx_fp32``,
    ``onnx_int8``; float32 (N, units)).

    Always: max |delta prob| source vs ONNX fp32 and ONNX fp32 vs int8, fp32 vs int8 top-1
    agreement, file sizes. ``accuracy``: top-1 accuracy of the three (``accuracy_*``).
    ``topk``: top-1 and top-5 of the three (``top1_*``, ``top5_*``). ``agreement``: source vs
    fp32 top-1 agreement, share of images whose fp32 top-1 is in int8's top 5 (robust to the
    near-ties of random weights), and how many distinct fp32 top-1 classes occur (a collapsed
    model predicts one). ``images``: float32 (N, ...) preprocessed as served; ``labels``: (N,)
    class indices, or None when only agreement is measured. ``source``: batch -> outputs.
    """
    groups = set(groups)
    outputs = {
        f"{source_key}_fp32": np.asarray(source(images)),
        "onnx_fp32": onnx_predict(onnx_session(fp32_path), images, batch_size=batch_size),
        "onnx_int8": onnx_predict(onnx_session(int8_path), images, batch_size=batch_size),
    }
    source_out, fp32_out, int8_out = outputs.values()
    metrics: dict[str, Any] = {}
    if "accuracy" in groups and labels is not None:
        metrics |= {f"accuracy_{key}": top1_accuracy(out, labels) for key, out in outputs.items()}
    metrics[f"max_abs_delta_prob_{source_key}_vs_onnx_fp32"] = max_abs_diff(source_out, fp32_out)
    metrics["max_abs_delta_prob_onnx_fp32_vs_int8"] = max_abs_diff(fp32_out, int8_out)
    if "agreement" in groups:
        metrics[f"top1_agreement_{source_key}_vs_onnx_fp32"] = top1_agreement(source_out, fp32_out)
    metrics["top1_agreement_fp32_vs_int8"] = top1_agreement(fp32_out, int8_out)
    if "agreement" in groups:
        int8_top5 = np.argsort(-to_class_scores(int8_out), axis=1)[:, :5]
        fp32_top1 = np.argmax(to_class_scores(fp32_out), axis=1)
        metrics["fp32_top1_in_int8_top5"] = float(np.mean((int8_top5 == fp32_top1[:, None]).any(axis=1)))
        metrics["distinct_top1_classes_onnx_fp32"] = int(len(np.unique(fp32_top1)))
    if "topk" in groups and labels is not None:
        for key, out in outputs.items():
            metrics[f"top1_{key}"] = top1_accuracy(out, labels)
            metrics[f"top5_{key}"] = topk_accuracy(out, labels, 5)
    metrics["size_fp32_bytes"] = fp32_path.stat().st_size
    metrics["size_int8_bytes"] = int8_path.stat().st_size
    return metrics, outputs
