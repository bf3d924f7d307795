"""Accuracy and parity measurements for Keras models and their ONNX exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort


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


def keras_predict(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0))


def to_class_scores(outputs: np.ndarray) -> np.ndarray:
    """(N, classes) scores; a (N, 1) sigmoid output becomes (N, 2) = (1 - p, p)."""
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


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


def compare_keras_onnx(
    model, fp32_path: Path, int8_path: Path, images: np.ndarray, labels: np.ndarray, batch_size: int = 256
) -> dict:
    """Accuracy of Keras fp32, ONNX fp32 and ONNX int8 on the same images, their parity, sizes.

    ``images``: float32 (N, ...) preprocessed as served; ``labels``: (N,) class indices.
    Outputs may be (N, classes) softmax or (N, 1) sigmoid (see ``to_class_scores``).
    """
    keras_out = keras_predict(model, images, batch_size=batch_size)
    fp32_out = onnx_predict(onnx_session(fp32_path), images, batch_size=batch_size)
    int8_out = onnx_predict(onnx_session(int8_path), images, batch_size=batch_size)
    return {
        "accuracy_keras_fp32": top1_accuracy(keras_out, labels),
        "accuracy_onnx_fp32": top1_accuracy(fp32_out, labels),
        "accuracy_onnx_int8": top1_accuracy(int8_out, labels),
        "max_abs_delta_prob_keras_vs_onnx_fp32": max_abs_diff(keras_out, fp32_out),
        "max_abs_delta_prob_onnx_fp32_vs_int8": max_abs_diff(fp32_out, int8_out),
        "top1_agreement_fp32_vs_int8": top1_agreement(fp32_out, int8_out),
        "size_fp32_bytes": fp32_path.stat().st_size,
        "size_int8_bytes": int8_path.stat().st_size,
    }
