"""Tiny real ONNX models built with ``onnx.helper``, published with a manifest like ``convert/``.

A linear classifier ``scores = flatten(image) @ weights + bias`` over a small digit canvas: small
enough to write by hand, real enough that ONNX Runtime loads and runs it and the service's
whole path (contract check, preprocessing, run, ranking) applies.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from service.manifest import MANIFEST_FILENAME, sha256_of
from tests.harness.paths import BUNDLED_MODELS


def linear_classifier(
    path: Path,
    weights: np.ndarray,
    bias: np.ndarray,
    *,
    canvas: int,
    input_name: str = "image",
    output_name: str = "scores",
    input_type: str = "FLOAT",
    symbolic_output: bool = True,
    flat_input: bool = False,
) -> None:
    """Write ``scores = reshape(image, (N, canvas*canvas)) @ weights + bias`` as ONNX to ``path``.

    ``weights`` float32 (canvas*canvas, classes), ``bias`` float32 (classes,). The input is
    (N, canvas, canvas, 1) of ``input_type`` (an ``onnx.TensorProto`` name); the output is
    (N, classes), with a symbolic class dimension when ``symbolic_output``. ``flat_input``
    makes the input (N, canvas*canvas) instead (a rank the digit preprocessing cannot feed).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    classes = weights.shape[1]
    input_shape = ["N", canvas * canvas] if flat_input else ["N", canvas, canvas, 1]
    elem = getattr(TensorProto, input_type)
    nodes = []
    image = input_name
    if input_type != "FLOAT":
        nodes.append(helper.make_node("Cast", [input_name], ["image_f"], to=TensorProto.FLOAT))
        image = "image_f"
    nodes += [
        helper.make_node("Reshape", [image, "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weights"], ["product"]),
        helper.make_node("Add", ["product", "bias"], [output_name]),
    ]
    initializers = [
        numpy_helper.from_array(np.array([-1, canvas * canvas], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(weights.astype(np.float32), "weights"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(input_name, elem, input_shape)],
        [
            helper.make_tensor_value_info(
                output_name, TensorProto.FLOAT, ["N", "C" if symbolic_output else classes]
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime the project supports
    onnx.checker.check_model(model)
    onnx.save(model, path)


def publish(directory: Path, onnx_path: Path, manifest: dict) -> Path:
    """Put ``onnx_path`` and its manifest (sha256 and size filled in) into ``directory``."""
    directory.mkdir(parents=True)
    target = directory / onnx_path.name
    shutil.copyfile(onnx_path, target)
    manifest = {
        **manifest,
        "file": target.name,
        "sha256": sha256_of(target),
        "size_bytes": target.stat().st_size,
    }
    (directory / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2))
    return directory


def linear_manifest(
    name: str, labels: list[str], canvas: int, kind: str = "logits", **changes: object
) -> dict:
    """A manifest for ``linear_classifier`` (digit preprocessing on a ``canvas`` canvas)."""
    manifest: dict = {
        "schema_version": 1,
        "name": name,
        "version": "0.0.1",
        "description": "hand-written linear test model",
        "labels": labels,
        "input": {"name": "image", "shape": [None, canvas, canvas, 1], "dtype": "float32", "layout": "NHWC"},
        "output": {"name": "scores", "kind": kind},
        "preprocessing": {"kind": "mnist_digit", "box": canvas - 4, "canvas": canvas, "resample": "lanczos"},
        "weights": "random",
    }
    manifest.update(changes)
    return manifest


def mnist_copy(directory: Path, name: str, **changes: object) -> Path:
    """A copy of the bundled digit model named ``name``, with top-level manifest ``changes``."""
    shutil.copytree(BUNDLED_MODELS / "mnist", directory)
    path = directory / MANIFEST_FILENAME
    manifest = json.loads(path.read_text())
    manifest.update(name=name, **changes)
    path.write_text(json.dumps(manifest, indent=2))
    return directory
