"""Run a loaded model on a batch and turn its output into class probabilities and top-k.

Model arithmetic only: the engine's predict and postprocess stages (``service.engine.pipeline``)
and offline tools (benchmarks, conversion checks) share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.engine.registry import LoadedModel
from service.manifest import Manifest, OutputKind


@dataclass(frozen=True)
class Ranked:
    """One class of a ranking: its index in the labels, its label, its probability in [0, 1]."""

    class_index: int
    label: str
    probability: float


def probabilities(output: np.ndarray, manifest: Manifest) -> np.ndarray:
    """Class probabilities, float64 (batch, classes), from the model's raw output (batch, ...)
    as its manifest's ``output.kind`` says (``class_probabilities``)."""
    return class_probabilities(output, manifest.output.kind)


def class_probabilities(output: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Class probabilities, float64 (batch, classes), from a raw model output (batch, ...): the
    one output-to-class routine of the service, the conversion checks and the benchmarks.

    ``softmax`` outputs are used as they are (clipped to [0, 1]), ``logits`` go through a
    numerically stable softmax, and a (batch, 1) ``sigmoid`` output p becomes the two columns
    (1 - p, p).
    """
    scores = np.asarray(output, dtype=np.float64).reshape(output.shape[0], -1)
    if kind == "logits":
        shifted = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
    if kind == "sigmoid":
        p = np.clip(scores[:, :1], 0.0, 1.0)
        return np.concatenate([1.0 - p, p], axis=1)
    return np.clip(scores, 0.0, 1.0)


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[Ranked]:
    """The ``k`` most probable classes of one row of probabilities, most probable first."""
    k = min(k, probs.shape[0])
    # Stable sort: ties keep class-index order, so results are deterministic.
    order = np.argsort(-probs, kind="stable")[:k]
    return [Ranked(int(i), labels[int(i)], float(probs[i])) for i in order]


def run(model: LoadedModel, batch: np.ndarray) -> np.ndarray:
    """One ONNX Runtime call on a batch; class probabilities float64 (N, classes).

    ``batch`` is float32 (N, *model.contract.sample_shape), e.g. (N, 28, 28, 1) for the digit
    model; thread-safe (``InferenceSession.run`` is). A graph with a static batch size gets
    the batch in slices of that size, one call each.
    """
    step = model.contract.max_batch or len(batch)
    outputs = [
        model.session.run([model.manifest.output.name], {model.manifest.input.name: batch[i : i + step]})[0]
        for i in range(0, len(batch), max(step, 1))
    ]
    output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
    return probabilities(output, model.manifest)
