"""The model contract: a manifest checked once, at load, against its ONNX graph and itself.

``check_contract(manifest, session)`` is called by the registry for every model. It either
returns what the request path needs to know about the graph or raises ``ContractError`` whose
message names the manifest field and both values, e.g.
``input.shape [None, 28, 28, 1] but the graph expects [N, 32, 32, 1]``; the model is then
*unavailable* with that reason (``/health``) and never reaches a request. After load the
request path does no manifest validation.

Checks, in order:

1. ``input``: the graph has exactly one input, named ``input.name``; its element type is
   ``input.dtype``; its rank and every static dimension equal ``input.shape`` (a symbolic graph
   dimension, shown as ``N`` for the batch, accepts any manifest value; the spatial and
   channel dimensions of the manifest must be static).
2. ``preprocessing``: the kind is one the ``task`` accepts, and its output (height, width,
   channels) fits the input read through ``input.layout``: ``mnist_digit`` makes a
   ``canvas`` x ``canvas`` x 1 tensor from a digit fitted in ``box`` <= ``canvas``;
   ``imagenet`` makes an H x W x 3 tensor of any size; ``image`` an H x W x C one with C = 1
   (grey) or 3 (colour), and as many ``mean`` / ``std`` values as channels (or one for all).
3. ``output``: the graph has an output named ``output.name``, of element type float, whose
   per-image size (product of the non-batch dimensions, when static) is the number of units
   the kind needs: ``len(labels)`` for ``softmax`` and ``logits``, 1 for ``sigmoid`` (two
   labels). An output size the graph leaves symbolic is measured with one all-zeros input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from service.manifest import ImageNetPreprocessing, ImagePreprocessing, Manifest, MnistDigitPreprocessing

# ONNX Runtime's element type names for the manifest's dtypes.
ORT_TYPES = {"float32": "tensor(float)"}
FLOAT_OUTPUTS = ("tensor(float)", "tensor(double)")
# Which preprocessing kinds make sense for which task.
PREPROCESSING_FOR_TASK = {"image-classification": ("mnist_digit", "imagenet", "image")}

Dim = int | str | None


class ContractError(ValueError):
    """The manifest and the graph (or the manifest and itself) disagree; the message says where."""


@dataclass(frozen=True)
class GraphContract:
    """What the request path relies on once the contract holds.

    ``sample_shape``: one image's input tensor without the batch dimension, e.g. (28, 28, 1).
    ``max_batch``: the graph's static batch size, or None when the batch dimension is dynamic.
    ``units``: values per image in the output (``len(labels)``, or 1 for ``sigmoid``).
    """

    sample_shape: tuple[int, ...]
    max_batch: int | None
    units: int


def check_contract(manifest: Manifest, session: ort.InferenceSession) -> GraphContract:
    """Check ``manifest`` against ``session``'s graph and itself (see the module docstring).

    Raises:
        ContractError: the first mismatch found, naming the field and both values.
    """
    graph_input = _the_input(manifest, session)
    sample_shape = _check_input(manifest, graph_input)
    _check_preprocessing(manifest)
    units = _check_output(manifest, session, sample_shape)
    batch = graph_input.shape[0]
    return GraphContract(sample_shape, batch if isinstance(batch, int) else None, units)


def units_needed(manifest: Manifest) -> int:
    """Output values per image the manifest's output kind needs."""
    return 1 if manifest.output.kind == "sigmoid" else len(manifest.labels)


def _the_input(manifest: Manifest, session: ort.InferenceSession) -> ort.NodeArg:
    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    if names != [manifest.input.name]:
        raise ContractError(f"input.name {manifest.input.name!r} but the graph's inputs are {names}")
    return inputs[0]


def _check_input(manifest: Manifest, graph_input: ort.NodeArg) -> tuple[int, ...]:
    spec = manifest.input
    if graph_input.type != ORT_TYPES[spec.dtype]:
        raise ContractError(f"input.dtype {spec.dtype} but the graph expects {graph_input.type}")
    graph_shape: list[Dim] = list(graph_input.shape)
    shown = f"input.shape {spec.shape} but the graph expects {_show(graph_shape)}"
    if len(graph_shape) != len(spec.shape):
        raise ContractError(f"{shown} (rank {len(spec.shape)} vs {len(graph_shape)})")
    for declared, expected in zip(spec.shape, graph_shape, strict=True):
        if isinstance(expected, int) and declared is not None and declared != expected:
            raise ContractError(shown)
    if isinstance(graph_shape[0], int) and spec.shape[0] is None and graph_shape[0] != 1:
        raise ContractError(f"{shown} (a static batch must be 1 or stated in the manifest)")
    if any(d is None for d in spec.shape[1:]):
        raise ContractError(f"input.shape {spec.shape} must give every non-batch dimension")
    return tuple(int(d) for d in spec.shape[1:])  # type: ignore[arg-type]


def _check_preprocessing(manifest: Manifest) -> None:
    spec = manifest.preprocessing
    allowed = PREPROCESSING_FOR_TASK.get(manifest.task, ())
    if spec.kind not in allowed:
        raise ContractError(f"preprocessing.kind {spec.kind!r} is not one task {manifest.task!r} accepts")
    hwc = manifest.input.height_width_channels
    layout = f"input.shape {manifest.input.shape} ({manifest.input.layout}: H, W, C = {hwc})"
    if isinstance(spec, MnistDigitPreprocessing):
        if spec.box > spec.canvas:
            raise ContractError(
                f"preprocessing.box {spec.box} is larger than preprocessing.canvas {spec.canvas}"
            )
        if hwc != (spec.canvas, spec.canvas, 1):
            raise ContractError(
                f"preprocessing makes {spec.canvas}x{spec.canvas}x1 (canvas {spec.canvas}) but {layout}"
            )
    elif isinstance(spec, ImageNetPreprocessing) and hwc[2] != 3:
        raise ContractError(f"preprocessing makes HxWx3 (imagenet, RGB) but {layout}")
    elif isinstance(spec, ImagePreprocessing):
        try:
            spec.per_channel(hwc[2])
        except ValueError as error:
            raise ContractError(f"preprocessing: {error}; {layout}") from None


def _check_output(manifest: Manifest, session: ort.InferenceSession, sample_shape: tuple[int, ...]) -> int:
    outputs = {o.name: o for o in session.get_outputs()}
    output = outputs.get(manifest.output.name)
    if output is None:
        raise ContractError(
            f"output.name {manifest.output.name!r} but the graph's outputs are {list(outputs)}"
        )
    if output.type not in FLOAT_OUTPUTS:
        raise ContractError(
            f"output {manifest.output.name!r} is {output.type}; a {manifest.output.kind} needs float"
        )
    dims = list(output.shape)[1:]
    if all(isinstance(d, int) for d in dims):
        units = math.prod(dims)
    else:  # symbolic: measure with one all-zeros image
        probe = np.zeros((1, *sample_shape), dtype=np.float32)
        (result,) = session.run([output.name], {manifest.input.name: probe})
        units = int(np.asarray(result)[0].size)
    needed = units_needed(manifest)
    if units != needed:
        why = (
            "sigmoid: one unit"
            if manifest.output.kind == "sigmoid"
            else f"{manifest.output.kind}: one per label"
        )
        raise ContractError(
            f"output {manifest.output.name!r} has {units} values per image ({_show(list(output.shape))}) "
            f"but {len(manifest.labels)} labels need {needed} ({why})"
        )
    return units


def _show(shape: list[Dim]) -> str:
    """A graph shape as text, symbolic dims as ``N`` (batch) or ``?``."""
    dims = [str(d) if isinstance(d, int) else ("N" if i == 0 else "?") for i, d in enumerate(shape)]
    return f"[{', '.join(dims)}]"
