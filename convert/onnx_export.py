"""Keras -> ONNX export.

Uses Keras 3's own ``model.export(format="onnx")``, which traces the model's inference call
with TensorFlow and converts it with tf2onnx (``tf2onnx.convert.from_keras`` does not work on
Keras 3). The exported graph is then given readable tensor names and a named batch dimension.
"""

from __future__ import annotations

from pathlib import Path

import onnx

DEFAULT_OPSET = 17  # ONNX Runtime >= 1.14 implements it fully; QDQ needs >= 13.
INPUT_NAME = "image"
BATCH_DIM = "batch"


def export_keras(
    model, path: Path, input_shape: tuple[int, ...], output_name: str, opset: int = DEFAULT_OPSET
) -> Path:
    """Export ``model`` to ``path`` with a dynamic batch dimension.

    Args:
        model: a built ``keras.Model`` whose inference call takes one float32 NHWC image batch.
        path: where to write the ``.onnx`` file.
        input_shape: per-image shape, e.g. ``(28, 28, 1)``; the batch dimension is added.
        output_name: name to give the single graph output (e.g. ``"probabilities"``).
        opset: ONNX opset version (>= 13, needed for per-channel QDQ).

    Returns:
        ``path``.
    """
    import tensorflow as tf  # heavy; only when exporting

    if opset < 13:
        raise ValueError(f"opset {opset} < 13: per-channel QuantizeLinear needs opset 13")
    path.parent.mkdir(parents=True, exist_ok=True)
    signature = [tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)]
    model.export(str(path), format="onnx", verbose=False, input_signature=signature, opset_version=opset)
    graph_model = onnx.load(str(path))
    _tidy_names(graph_model, output_name)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))
    return path


def _tidy_names(model: onnx.ModelProto, output_name: str) -> None:
    """Name the batch dimension ``batch`` and the single output ``output_name``."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"expected one input and one output, got {len(graph.input)}/{len(graph.output)}")
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = [output_name if name == old else name for name in node.output]
        node.input[:] = [output_name if name == old else name for name in node.input]
    graph.output[0].name = output_name
