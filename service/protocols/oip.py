"""Open Inference Protocol (KServe V2 / Triton) REST codec for image classifiers.

Sources:
- https://github.com/kserve/open-inference-protocol, ``specification/protocol/inference_rest.md``:
  server/model metadata, inference request and response objects, ``{"error": ...}`` bodies.
- Triton ``docs/protocol/extension_binary_data.md``: tensors after the JSON header, whose length
  is the ``Inference-Header-Content-Length`` header; little-endian, row-major; a ``BYTES``
  element is a 4-byte little-endian unsigned length then the bytes; ``binary_data_size`` on an
  input, ``binary_data`` on a requested output, ``binary_data_output`` on the request.
- Triton ``docs/protocol/extension_classification.md``: ``"classification": k`` on a requested
  output returns a ``BYTES`` tensor ``[N, k]`` of ``"<value>:<index>:<label>"`` strings.

A model here takes one of two inputs (a request sends exactly one):

- ``image_bytes``: ``BYTES`` ``[N]`` or ``[N, 1]``, each element an encoded image file (JPEG,
  PNG, HEIC, ...): base64 strings in JSON, raw bytes in binary. The service decodes and
  preprocesses them like an upload.
- the model's own input (``manifest.input.name``): ``FP32`` with the model's shape, already
  preprocessed, in JSON ``data`` (flat or nested, row-major) or binary.

and produces one output, ``probabilities``: ``FP32 [N, classes]``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ServiceError
from ..manifest import Manifest

HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "onnx_onnxv1"
EXTENSIONS = ("binary_tensor_data", "classification")
IMAGE_INPUT = "image_bytes"
PROBABILITIES = "probabilities"
_BYTES_PREFIX = struct.Struct("<I")


class ProtocolError(ServiceError):
    """400: the request does not follow the Open Inference Protocol or this model's inputs."""

    status_code = 400


@dataclass(frozen=True)
class RequestedOutput:
    """One entry of the request's ``outputs``: the name and its parameters."""

    name: str
    classification: int | None = None  # top-k strings instead of the tensor
    binary: bool | None = None  # None: follow the request's binary_data_output


@dataclass(frozen=True)
class ImageBatch:
    """What the request asks to classify: encoded files or a preprocessed tensor (one is set)."""

    files: list[bytes] | None = None
    tensor: np.ndarray | None = None  # float32, the model's input shape with N first

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else int(self.tensor.shape[0])  # type: ignore[union-attr]


@dataclass(frozen=True)
class InferenceRequest:
    id: str | None
    batch: ImageBatch
    outputs: list[RequestedOutput] = field(default_factory=list)  # empty: every output, defaults
    binary_data_output: bool = False


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    headers: dict[str, str]
    media_type: str


# --- metadata -----------------------------------------------------------------------------------


def server_metadata(name: str, version: str) -> dict[str, Any]:
    """``GET /v2``: ``{"name", "version", "extensions"}``."""
    return {"name": name, "version": version, "extensions": list(EXTENSIONS)}


def model_metadata(manifest: Manifest) -> dict[str, Any]:
    """``GET /v2/models/{name}``: platform, versions, inputs and outputs; ``-1`` = variable."""
    return {
        "name": manifest.name,
        "versions": [manifest.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": manifest.input.name, "datatype": "FP32", "shape": model_input_shape(manifest)},
        ],
        "outputs": [{"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(manifest.labels)]}],
    }


def model_input_shape(manifest: Manifest) -> list[int]:
    """The model input's shape with ``-1`` for dynamic dimensions (the batch)."""
    return [-1 if d is None else int(d) for d in manifest.input.shape]


# --- requests -----------------------------------------------------------------------------------


def parse_request(
    body: bytes, header_length: str | None, manifest: Manifest, max_images: int
) -> InferenceRequest:
    """Parse an inference request for ``manifest``'s model.

    Args:
        body: the HTTP body: the JSON object, then any binary tensor data.
        header_length: the ``Inference-Header-Content-Length`` header (None when absent).
        manifest: the model asked for; its input name, shape and labels.
        max_images: largest batch accepted (``N``).

    Raises:
        ProtocolError (400): malformed JSON, unknown or missing input, wrong datatype or shape,
            binary sizes that do not add up, non-base64 ``BYTES`` in JSON, non-finite floats.
        PayloadTooLarge (413): more than ``max_images`` images.
    """
    json_part, binary = _split_body(body, header_length)
    document = _load_json(json_part)
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError('"id" must be a string')
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError('"inputs" must be a non-empty list of input tensors')
    if len(inputs) != 1:
        names = [i.get("name") if isinstance(i, dict) else i for i in inputs]
        raise ProtocolError(
            f"send exactly one input, {IMAGE_INPUT!r} (encoded images) or {manifest.input.name!r} "
            f"(preprocessed FP32 tensor); got {names}"
        )
    batch, used = _parse_input(inputs[0], binary, manifest, max_images)
    if used != len(binary):
        raise ProtocolError(
            f"{len(binary) - used} bytes of binary data after the JSON header are not claimed by any "
            f"input's binary_data_size"
        )
    parameters = _parameters(document, "request")
    return InferenceRequest(
        id=request_id,
        batch=batch,
        outputs=_requested_outputs(document.get("outputs")),
        binary_data_output=_flag(parameters, "binary_data_output"),
    )


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise ProtocolError(f"{HEADER_LENGTH} must be an integer, got {header_length[:40]!r}") from None
    if not 0 < length <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
    return body[:length], body[length:]


def _load_json(data: bytes) -> dict[str, Any]:
    if not data.strip():
        raise ProtocolError("empty body: send an inference request JSON object")

    def refuse_constant(name: str) -> float:
        raise ProtocolError(f"{name} is not valid JSON")

    try:
        document = json.loads(data, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise ProtocolError("body must be a JSON object (an inference request)")
    return document


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = holder.get("parameters", {})
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f'"parameters" of the {where} must be an object')
    return parameters


def _flag(parameters: dict[str, Any], key: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f'parameter "{key}" must be true or false')
    return value


def _parse_input(tensor: Any, binary: bytes, manifest: Manifest, max_images: int) -> tuple[ImageBatch, int]:
    """(the batch, bytes of ``binary`` it used)."""
    if not isinstance(tensor, dict):
        raise ProtocolError("each input must be an object with name, shape, datatype and data")
    name, datatype, shape = tensor.get("name"), tensor.get("datatype"), tensor.get("shape")
    if not isinstance(name, str):
        raise ProtocolError('input "name" must be a string')
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    parameters = _parameters(tensor, f"input {name!r}")
    binary_size = parameters.get("binary_data_size")
    if binary_size is not None and (
        not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0
    ):
        raise ProtocolError(f"input {name!r}: binary_data_size must be a non-negative integer")
    if binary_size is not None and "data" in tensor:
        raise ProtocolError(f"input {name!r}: give either JSON data or binary_data_size, not both")
    if binary_size is None and "data" not in tensor:
        raise ProtocolError(f"input {name!r} has no data (JSON 'data' or binary_data_size)")
    if binary_size is not None and binary_size > len(binary):
        raise ProtocolError(
            f"input {name!r}: binary_data_size is {binary_size} but only {len(binary)} bytes of binary "
            f"data follow the JSON header (is {HEADER_LENGTH} set?)"
        )
    raw = binary[:binary_size] if binary_size is not None else None
    if name == IMAGE_INPUT:
        if datatype != "BYTES":
            raise ProtocolError(f"input {IMAGE_INPUT!r} must have datatype BYTES, got {datatype!r}")
        count = _image_count(shape, max_images)
        files = _bytes_elements(raw, name) if raw is not None else _base64_elements(tensor["data"], name)
        if len(files) != count:
            raise ProtocolError(f"input {name!r}: shape {shape} says {count} images, data has {len(files)}")
        return ImageBatch(files=files), binary_size or 0
    if name == manifest.input.name:
        if datatype != "FP32":
            raise ProtocolError(f"input {name!r} must have datatype FP32, got {datatype!r}")
        _check_tensor_shape(shape, manifest, max_images)
        array = _fp32(raw, tensor.get("data"), shape, name)
        return ImageBatch(tensor=array), binary_size or 0
    raise ProtocolError(
        f"unknown input {name!r}; model {manifest.name!r} takes {IMAGE_INPUT!r} (BYTES) or "
        f"{manifest.input.name!r} (FP32)"
    )


def _image_count(shape: list[int], max_images: int) -> int:
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ProtocolError(f"input {IMAGE_INPUT!r} must have shape [N] or [N, 1], got {shape}")
    _check_batch(shape[0], max_images)
    return shape[0]


def _check_batch(count: int, max_images: int) -> None:
    from ..errors import PayloadTooLarge

    if count == 0:
        raise ProtocolError("the batch is empty: send at least one image")
    if count > max_images:
        raise PayloadTooLarge(f"{count} images in one request; limit is {max_images} (EDGE_MAX_BATCH_IMAGES)")


def _check_tensor_shape(shape: list[int], manifest: Manifest, max_images: int) -> None:
    expected = model_input_shape(manifest)
    matches = len(shape) == len(expected) and all(e in (-1, d) for e, d in zip(expected, shape, strict=True))
    if not matches:
        raise ProtocolError(f"input {manifest.input.name!r} must have shape {expected}, got {shape}")
    _check_batch(shape[0], max_images)


def _bytes_elements(raw: bytes, name: str) -> list[bytes]:
    """Split binary ``BYTES`` data: each element a 4-byte little-endian length, then the bytes."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input {name!r}: binary BYTES data ends inside a 4-byte length prefix")
        (length,) = _BYTES_PREFIX.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError(
                f"input {name!r}: element {len(elements)} claims {length} bytes, {len(raw) - offset} remain"
            )
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def _base64_elements(data: Any, name: str) -> list[bytes]:
    flat = _flatten(data)
    files = []
    for index, element in enumerate(flat):
        if not isinstance(element, str):
            raise ProtocolError(f"input {name!r}: element {index} must be a base64 string")
        try:
            files.append(base64.b64decode(element, validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError(
                f"input {name!r}: element {index} is not valid base64 (BYTES in JSON carry base64-encoded "
                f"image files; send raw bytes with the binary tensor data extension)"
            ) from None
    return files


def _flatten(data: Any) -> list[Any]:
    """Row-major flattening of JSON ``data`` given flat or nested (iterative: no deep recursion)."""
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _fp32(raw: bytes | None, data: Any, shape: list[int], name: str) -> np.ndarray:
    count = math.prod(shape)
    if raw is not None:
        if len(raw) != count * 4:
            raise ProtocolError(
                f"input {name!r}: shape {shape} needs {count * 4} bytes of FP32, "
                f"binary_data_size is {len(raw)}"
            )
        array = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    else:
        flat = _flatten(data)
        if len(flat) != count:
            raise ProtocolError(f"input {name!r}: shape {shape} needs {count} values, data has {len(flat)}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
            raise ProtocolError(f"input {name!r}: FP32 data must be numbers")
        array = np.asarray(flat, dtype=np.float32)
    if not np.isfinite(array).all():
        raise ProtocolError(f"input {name!r}: FP32 data must be finite (no NaN or infinity)")
    return array.reshape(shape)


def _requested_outputs(outputs: Any) -> list[RequestedOutput]:
    if outputs is None:
        return []
    if not isinstance(outputs, list):
        raise ProtocolError('"outputs" must be a list')
    requested = []
    for entry in outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ProtocolError('each requested output must be an object with a "name"')
        if entry["name"] != PROBABILITIES:
            raise ProtocolError(f"unknown output {entry['name']!r}; this model has {PROBABILITIES!r}")
        parameters = _parameters(entry, f"output {entry['name']!r}")
        classification = parameters.get("classification")
        if classification is not None and (
            not isinstance(classification, int) or isinstance(classification, bool) or classification < 1
        ):
            raise ProtocolError('parameter "classification" must be a positive integer')
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise ProtocolError('parameter "binary_data" must be true or false')
        requested.append(RequestedOutput(entry["name"], classification, binary))
    return requested


# --- responses ----------------------------------------------------------------------------------


def classification_strings(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[str]]:
    """Triton's ``"<value>:<index>:<label>"`` for the ``k`` most probable classes of each row.

    Ties keep class-index order (stable sort), like the native route's top-k. ``value`` is the
    probability as float32's shortest round-trip text.
    """
    k = min(k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [
        [f"{str(np.float32(row[i]))}:{int(i)}:{labels[int(i)]}" for i in indices]
        for row, indices in zip(probabilities, order, strict=True)
    ]


def encode_response(
    model_name: str,
    model_version: str,
    request: InferenceRequest,
    probabilities: np.ndarray,
    labels: list[str],
) -> EncodedResponse:
    """The inference response for ``probabilities`` (float, ``[N, classes]``).

    JSON only, unless an output is returned as binary: then the JSON header, then the tensors
    in output order, and ``Inference-Header-Content-Length`` gives the header's length.
    """
    wanted = request.outputs or [RequestedOutput(PROBABILITIES)]
    outputs, blobs = [], []
    for want in wanted:
        binary = request.binary_data_output if want.binary is None else want.binary
        if want.classification is not None:
            strings = classification_strings(probabilities, labels, want.classification)
            shape = [len(strings), len(strings[0]) if strings else 0]
            entry: dict[str, Any] = {"name": want.name, "datatype": "BYTES", "shape": shape}
            if binary:
                blob = b"".join(
                    _BYTES_PREFIX.pack(len(b)) + b for b in (s.encode() for row in strings for s in row)
                )
            else:
                entry["data"] = [s for row in strings for s in row]
        else:
            values = np.ascontiguousarray(probabilities, dtype="<f4")
            entry = {"name": want.name, "datatype": "FP32", "shape": list(values.shape)}
            if binary:
                blob = values.tobytes()
            else:
                entry["data"] = [float(v) for v in values.ravel()]
        if binary:
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        outputs.append(entry)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if request.id is not None:
        document["id"] = request.id
    header = json.dumps(document, separators=(",", ":")).encode()
    if not blobs:
        return EncodedResponse(header, {}, "application/json")
    return EncodedResponse(
        header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}, "application/octet-stream"
    )
