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
    tidy_names(graph_model, output_name)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))
    return path


def tidy_names(model: onnx.ModelProto, output_name: str) -> None:
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


def prepare_onnx(source: Path, path: Path, sample_shape: tuple[int, ...], output_name: str) -> Path:
    """A user's fp32 ONNX file as the pipeline's fp32 model, written to ``path``.

    The one input is renamed ``image`` (``INPUT_NAME``), its batch dimension made dynamic
    (``batch``: int8 calibration runs batches of 32) and its other dimensions set to
    ``sample_shape`` (e.g. (3, 224, 224) for a dynamic-size torchvision export given
    ``--input-size 224,224``); the one output is renamed ``output_name``; opsets below 13 are
    converted to ``DEFAULT_OPSET`` (per-channel QDQ needs 13). Nothing else changes: the graph
    computes what the user's file computes (the pipeline checks it on real images).
    """
    model = onnx.load(str(source))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), DEFAULT_OPSET)
    if opset < 13:
        from onnx import version_converter

        model = version_converter.convert_version(model, DEFAULT_OPSET)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    graph_input = next(i for i in graph.input if i.name not in initializers)
    old = graph_input.name
    for node in graph.node:
        node.input[:] = [INPUT_NAME if name == old else name for name in node.input]
    graph_input.name = INPUT_NAME
    dims = graph_input.type.tensor_type.shape.dim
    dims[0].ClearField("dim_value")
    for dim, size in zip(list(dims)[1:], sample_shape, strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = size
    tidy_names(model, output_name)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def append_sigmoid(path: Path) -> Path:
    """Rewrite ``path`` so its one output goes through a Sigmoid (same output name): a model
    whose single unit is a logit (``Dense(1)`` trained ``from_logits=True``) then gives the
    probability of the second class, which is what a ``sigmoid`` manifest output means."""
    model = onnx.load(str(path))
    graph = model.graph
    output = graph.output[0]
    logit = f"{output.name}_logit"
    for node in graph.node:
        node.output[:] = [logit if name == output.name else name for name in node.output]
        node.input[:] = [logit if name == output.name else name for name in node.input]
    graph.node.append(onnx.helper.make_node("Sigmoid", [logit], [output.name], name="appended_sigmoid"))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
