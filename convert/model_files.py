"""A user's trained model file, opened for conversion: Keras 3 ``.keras``, legacy HDF5 ``.h5`` /
``.hdf5`` (tf.keras 2.x or Keras 3), a TensorFlow SavedModel directory, or an fp32 ``.onnx``.

``open_model(path)`` returns a ``SourceModel``: its one input's shape (as the file states it,
``None`` for dynamic dimensions), its one output's width, the final activation when the file
says it, the user's own model as a batch function (the reference every export is compared
with), and how to write it as fp32 ONNX. Every problem with the file is a ``ModelFileError``
whose message is one line naming it (the CLI prints it and exits with status 2).

A model file is code. ``.keras`` files load with Keras's ``safe_mode=True``; ``Lambda`` layers
(serialized Python bytecode) in ``.keras`` and ``.h5`` files are refused before anything is
deserialized unless ``trust_code`` (``--trust-model-code``); custom classes are only those the
user names (``--custom-objects module:Name``), imported from the user's own modules.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Format = Literal["keras", "h5", "savedmodel", "onnx"]
Activation = Literal["sigmoid", "softmax", "other", "unknown"]
# The HDF5 and zip signatures: a file is looked at by its bytes, not only its suffix.
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
TRUST_FLAG = "--trust-model-code"


class ModelFileError(ValueError):
    """The file cannot be converted; the message says why in one line."""


@dataclass
class SourceModel:
    """The user's model, opened.

    ``input_shape``: the input's dimensions as stated (batch first; ``None`` = dynamic).
    ``layout``: ``NHWC`` / ``NCHW`` when the format fixes it (Keras models are NHWC), else None.
    ``units``: values per image of the output (None when dynamic). ``activation``: the final
    activation when the file records it. ``predict(batch)``: the user's own model on a float32
    batch in its own layout -> float32 (N, units). ``export(path, sample_shape, output_name)``:
    write the fp32 ONNX with one input ``image`` of the static per-image ``sample_shape`` (in
    the model's layout, e.g. (224, 224, 3) or (3, 224, 224)) and a dynamic batch.
    ``description``: what was loaded, for the manifest (e.g. ``tf.keras 2.21.0 HDF5 model``).
    """

    format: Format
    path: Path
    input_shape: tuple[int | None, ...]
    layout: Literal["NHWC", "NCHW"] | None
    units: int | None
    activation: Activation
    predict: Callable[[np.ndarray], np.ndarray]
    export: Callable[[Path, tuple[int, ...], str], Path]
    description: str
    model: Any = None  # the loaded Keras model, when there is one (latency is timed on it)


def open_model(path: Path, trust_code: bool = False, custom_objects: tuple[str, ...] = ()) -> SourceModel:
    """Open ``path`` (format from its content and suffix; see the module docstring).

    Raises:
        ModelFileError: missing file, unsupported format, not a model (e.g. a weights-only
            ``.h5``), a ``Lambda`` layer without ``trust_code``, several inputs or outputs, an
            input that is not 4-D, or a file its loader rejects.
    """
    if not path.exists():
        raise ModelFileError(f"{path}: no such file or directory")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelFileError(f"{path}: a directory, but not a TensorFlow SavedModel (no saved_model.pb)")
        return _open_savedmodel(path)
    suffix = path.suffix.lower()
    head = path.read_bytes()[:8] if path.stat().st_size else b""
    if suffix == ".keras":
        if not head.startswith(_ZIP_MAGIC):
            raise ModelFileError(f"{path}: not a Keras model file (a .keras file is a zip archive)")
        return _open_keras(path, trust_code, _custom(custom_objects))
    if suffix in (".h5", ".hdf5"):
        if head != _HDF5_MAGIC:
            raise ModelFileError(f"{path}: not an HDF5 file")
        return _open_h5(path, trust_code, _custom(custom_objects))
    if suffix == ".onnx":
        return _open_onnx(path)
    if suffix in (".pb", ".tflite", ".pt", ".pth", ".safetensors", ".bin", ".pkl"):
        hint = {
            ".pb": "pass the SavedModel directory that holds it",
            ".pt": "export it with torch.onnx.export and import the .onnx",
            ".pth": "export it with torch.onnx.export and import the .onnx",
        }.get(suffix, "convert it to .onnx, .keras, .h5 or a SavedModel first")
        raise ModelFileError(f"{path}: {suffix} files are not supported; {hint}")
    raise ModelFileError(
        f"{path}: unsupported model format {suffix or '(no suffix)'!r}; "
        "give a .keras, .h5/.hdf5 or .onnx file or a SavedModel directory"
    )


def _custom(specs: tuple[str, ...]) -> dict[str, Any]:
    """``module:Name`` -> {Name: object}, imported from the user's own (importable) modules."""
    objects: dict[str, Any] = {}
    for spec in specs:
        module_name, _, name = spec.partition(":")
        if not module_name or not name:
            raise ModelFileError(f"--custom-objects {spec!r}: expected module:Name")
        try:
            objects[name] = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as error:
            raise ModelFileError(f"--custom-objects {spec!r}: {error}") from None
    return objects


def _layers(config: Any) -> Iterator[dict[str, Any]]:
    """Every layer config in a serialized Keras model config, nested models included."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            yield config
        for value in config.values():
            yield from _layers(value)
    elif isinstance(config, list):
        for value in config:
            yield from _layers(value)


def _refuse_lambda(path: Path, config: Any, trust_code: bool) -> None:
    if trust_code:
        return
    names = [layer["config"].get("name", "?") for layer in _layers(config) if layer["class_name"] == "Lambda"]
    if names:
        raise ModelFileError(
            f"{path}: Lambda layer {names[0]!r} holds serialized Python code, which loading would run; "
            f"pass {TRUST_FLAG} only if you trust where the file came from"
        )


def _open_keras(path: Path, trust_code: bool, custom: dict[str, Any]) -> SourceModel:
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise ModelFileError(f"{path}: not a Keras model archive ({error})") from None
    _refuse_lambda(path, config, trust_code)
    import keras

    try:
        model = keras.models.load_model(path, custom_objects=custom, compile=False, safe_mode=not trust_code)
    except Exception as error:  # noqa: BLE001 - Keras raises many types; the message is what helps
        raise ModelFileError(f"{path}: Keras could not load it: {_first_line(error)}") from None
    return _keras_source(model, "keras", path, f"Keras {keras.__version__} .keras model")


def _open_h5(path: Path, trust_code: bool, custom: dict[str, Any]) -> SourceModel:
    import h5py

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
        version = handle.attrs.get("keras_version", b"")
    if raw is None:
        raise ModelFileError(
            f"{path}: an HDF5 file without a model config (weights only?); save the whole model "
            "with model.save(), or use `keras-app` for keras.applications weights"
        )
    version = version.decode() if isinstance(version, bytes) else str(version)
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    _refuse_lambda(path, config, trust_code)
    if version.startswith("2."):
        # Written by tf.keras 2.x: its own loader reads every layer as it was saved (Keras 3
        # does not load all of them, e.g. MobileNetV2's).
        import tf_keras

        loader, who = tf_keras.models.load_model, f"tf.keras {version} HDF5 model"
        kwargs: dict[str, Any] = {}
    else:
        import keras

        loader, who = keras.models.load_model, f"Keras {version or '?'} legacy HDF5 model"
        kwargs = {"safe_mode": not trust_code}
    try:
        model = loader(path, custom_objects=custom, compile=False, **kwargs)
    except Exception as error:  # noqa: BLE001
        raise ModelFileError(f"{path}: could not load it as a {who}: {_first_line(error)}") from None
    return _keras_source(model, "h5", path, who)


def _keras_source(model: Any, fmt: Format, path: Path, description: str) -> SourceModel:
    inputs, outputs = list(model.inputs), list(model.outputs)
    if len(inputs) != 1:
        raise ModelFileError(
            f"{path}: {len(inputs)} inputs ({_names(inputs)}); only one image input is supported"
        )
    if len(outputs) != 1:
        raise ModelFileError(
            f"{path}: {len(outputs)} outputs ({_names(outputs)}); only one output is supported"
        )
    shape = tuple(model.inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2:
        raise ModelFileError(f"{path}: output shape {out_shape}; a classifier's is (batch, classes)")
    activation = getattr(model.layers[-1], "activation", None)
    name = getattr(activation, "__name__", "")
    kind: Activation = name if name in ("sigmoid", "softmax") else ("other" if name else "unknown")  # type: ignore[assignment]
    is_tf_keras = type(model).__module__.startswith("tf_keras")

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(batch, batch_size=32, verbose=0), dtype=np.float32)

    def export(target: Path, sample_shape: tuple[int, ...], output_name: str) -> Path:
        if is_tf_keras:  # Keras 3's model.export cannot trace a tf.keras model: go through tf.function
            return _export_tf(lambda x: model(x, training=False), target, sample_shape, output_name)
        from .onnx_export import export_keras

        return export_keras(model, target, sample_shape, output_name)

    return SourceModel(
        format=fmt,
        path=path,
        input_shape=_dims(shape),
        layout="NHWC",
        units=out_shape[-1],
        activation=kind,
        predict=predict,
        export=export,
        description=description,
        model=model,
    )


def _open_savedmodel(path: Path) -> SourceModel:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # noqa: BLE001
        raise ModelFileError(
            f"{path}: TensorFlow could not load the SavedModel: {_first_line(error)}"
        ) from None
    signatures = dict(loaded.signatures)
    signature_key = "serving_default" if "serving_default" in signatures else next(iter(signatures), "")
    signature = signatures.get(signature_key)
    if signature is None:
        raise ModelFileError(f"{path}: the SavedModel has no serving signature (save it with model.export())")
    _, kwargs = signature.structured_input_signature
    if len(kwargs) != 1:
        raise ModelFileError(
            f"{path}: {len(kwargs)} inputs ({', '.join(sorted(kwargs))}); only one image input is supported"
        )
    outputs = signature.structured_outputs
    if len(outputs) != 1:
        raise ModelFileError(
            f"{path}: {len(outputs)} outputs ({', '.join(sorted(outputs))}); only one output is supported"
        )
    (input_name, input_spec), (output_key, output_spec) = (
        next(iter(kwargs.items())),
        next(iter(outputs.items())),
    )
    out_shape = tuple(output_spec.shape)

    def call(x: Any) -> Any:
        # Through ``loaded``: a signature alone does not keep the SavedModel's variables alive.
        return loaded.signatures[signature_key](**{input_name: x})[output_key]

    def predict(batch: np.ndarray) -> np.ndarray:
        parts = [call(tf.constant(batch[i : i + 32])).numpy() for i in range(0, len(batch), 32)]
        return np.concatenate(parts).astype(np.float32)

    def export(target: Path, sample_shape: tuple[int, ...], output_name: str) -> Path:
        return _export_tf(call, target, sample_shape, output_name)

    return SourceModel(
        format="savedmodel",
        path=path,
        input_shape=_dims(tuple(input_spec.shape)),
        layout=None,  # a SavedModel may be either; inferred from the shape
        units=out_shape[-1] if len(out_shape) == 2 else None,
        activation="unknown",
        predict=predict,
        export=export,
        description=f"TensorFlow SavedModel (signature input {input_name!r})",
    )


def _export_tf(
    call: Callable[[Any], Any], target: Path, sample_shape: tuple[int, ...], output_name: str
) -> Path:
    """tf2onnx of a TensorFlow callable on a float32 batch (the SavedModel and tf.keras path)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    from .onnx_export import DEFAULT_OPSET, INPUT_NAME, tidy_names

    signature = [tf.TensorSpec((None, *sample_shape), tf.float32, name=INPUT_NAME)]
    function = tf.function(call, input_signature=signature)
    target.parent.mkdir(parents=True, exist_ok=True)
    graph, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=DEFAULT_OPSET)
    tidy_names(graph, output_name)
    onnx.checker.check_model(graph)
    onnx.save(graph, str(target))
    return target


def _open_onnx(path: Path) -> SourceModel:
    import onnx
    import onnxruntime as ort

    try:
        graph = onnx.load(str(path))
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ModelFileError(f"{path}: not an ONNX model ({_first_line(error)})") from None
    initializers = {t.name for t in graph.graph.initializer}
    inputs = [i for i in graph.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelFileError(
            f"{path}: {len(inputs)} inputs ({_names(inputs)}); only one image input is supported"
        )
    if len(graph.graph.output) != 1:
        names = ", ".join(o.name for o in graph.graph.output)
        raise ModelFileError(
            f"{path}: {len(graph.graph.output)} outputs ({names}); only one output is supported"
        )
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise ModelFileError(f"{path}: input {inputs[0].name!r} is not float32; give the fp32 model")
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    out_dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in graph.graph.output[0].type.tensor_type.shape.dim
    ]
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001
        raise ModelFileError(f"{path}: ONNX Runtime cannot load it: {_first_line(error)}") from None
    last = graph.graph.node[-1].op_type if graph.graph.node else ""
    activation: Activation = {"Sigmoid": "sigmoid", "Softmax": "softmax"}.get(last, "other")  # type: ignore[assignment]
    input_name = inputs[0].name

    def predict(batch: np.ndarray) -> np.ndarray:
        parts = [session.run(None, {input_name: batch[i : i + 32]})[0] for i in range(0, len(batch), 32)]
        return np.concatenate(parts).astype(np.float32)

    def export(target: Path, sample_shape: tuple[int, ...], output_name: str) -> Path:
        from .onnx_export import prepare_onnx

        return prepare_onnx(path, target, sample_shape, output_name)

    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 0)
    return SourceModel(
        format="onnx",
        path=path,
        input_shape=_dims(shape) if len(shape) else (),
        layout=None,
        units=out_dims[-1] if len(out_dims) == 2 else None,
        activation=activation,
        predict=predict,
        export=export,
        description=f"ONNX model (opset {opset}, producer {graph.producer_name or '?'})",
    )


def _dims(shape: tuple[Any, ...]) -> tuple[int | None, ...]:
    return tuple(int(d) if isinstance(d, int) and d > 0 else None for d in shape)


def _names(tensors: list[Any]) -> str:
    return ", ".join(str(getattr(t, "name", t)) for t in tensors)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
