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

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.encoding import decode_base64, load_json
from service.engine.inference import top_k
from service.engine.pipeline import EncodedImages, Tensor
from service.errors import BadRequest, PayloadTooLarge
from service.manifest import Manifest

HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "onnx_onnxv1"
EXTENSIONS = ("binary_tensor_data", "classification")
IMAGE_INPUT = "image_bytes"
PROBABILITIES = "probabilities"
_BYTES_PREFIX = struct.Struct("<I")


class ProtocolError(BadRequest):
    """400: the request does not follow the Open Inference Protocol (or KServe V1), or this
    model's inputs."""


@dataclass(frozen=True)
class RequestedOutput:
    """One entry of the request's ``outputs``: the name and its parameters."""

    name: str
    classification: int | None = None  # top-k strings instead of the tensor
    binary: bool | None = None  # None: follow the request's binary_data_output


@dataclass(frozen=True)
class InferenceRequest:
    """A parsed request: what to classify (the engine's inputs: encoded image files, or the
    model's preprocessed float32 tensor with N first) and how to answer."""

    id: str | None
    inputs: EncodedImages | Tensor
    outputs: list[RequestedOutput] = field(default_factory=list)  # empty: every output, defaults
    binary_data_output: bool = False


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    headers: dict[str, str]
    media_type: str


# --- wire bodies (pydantic: validation and the OpenAPI schema both come from these) ---------------


class _Body(BaseModel):
    """A JSON object of the protocol: strict types (no "5" for 5, no 1 for true), unknown keys
    ignored, validator built on first use (``defer_build``: cold start does not pay for it)."""

    model_config = ConfigDict(defer_build=True, strict=True, extra="ignore")


class TensorParameters(_Body):
    binary_data_size: int | None = Field(
        None, ge=0, description="Bytes of this input in the binary data after the JSON header."
    )


class RequestInput(_Body):
    """One input tensor. ``image_bytes`` (``BYTES``): encoded image files; the model's own input
    name (``FP32``): its preprocessed tensor."""

    name: str = Field(examples=[IMAGE_INPUT, "image"])
    shape: list[Annotated[int, Field(ge=0)]] = Field(examples=[[1]])
    datatype: str = Field(json_schema_extra={"enum": ["BYTES", "FP32"]}, examples=["BYTES"])
    parameters: TensorParameters | None = None
    data: list[Any] | None = Field(
        None, description="Base64 strings (BYTES) or numbers (FP32), flat or nested, row-major."
    )


class OutputParameters(_Body):
    classification: int | None = Field(
        None, ge=1, description="Return the top-k classes as `<score>:<index>:<label>` strings."
    )
    binary_data: bool | None = Field(None, description="Return this output as binary data.")


class RequestOutput(_Body):
    name: str = Field(json_schema_extra={"enum": [PROBABILITIES]}, examples=[PROBABILITIES])
    parameters: OutputParameters | None = None


class RequestParameters(_Body):
    binary_data_output: bool = Field(False, description="Return every output as binary data.")


class InferenceRequestBody(_Body):
    """An inference request (``inference_rest.md``, "Inference Request JSON Object")."""

    id: str | None = None
    parameters: RequestParameters | None = None
    inputs: list[RequestInput] = Field(min_length=1, description="Exactly one input tensor.")
    outputs: list[RequestOutput] | None = None


class ResponseOutput(_Body):
    name: str = Field(examples=[PROBABILITIES])
    datatype: str = Field(examples=["FP32", "BYTES"])
    shape: list[int]
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponseBody(_Body):
    """An inference response (``inference_rest.md``, "Inference Response JSON Object")."""

    model_name: str = Field(examples=["mnist"])
    model_version: str | None = Field(None, examples=["1.0.0"])
    id: str | None = None
    outputs: list[ResponseOutput]


def protocol_error(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> ProtocolError:
    """A 400 naming where the body broke its wire model and how (pydantic's first error)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in (*prefix, *first["loc"]))
    return ProtocolError(f"{where}: {first['msg']}" if where else first["msg"])


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
    if not json_part.strip():
        raise ProtocolError("empty body: send an inference request JSON object")
    document = load_json(json_part, ProtocolError)
    if not isinstance(document, dict):
        raise ProtocolError("body must be a JSON object (an inference request)")
    try:
        request = InferenceRequestBody.model_validate(document)
    except ValidationError as exc:
        raise protocol_error(exc) from None
    if len(request.inputs) != 1:
        names = [i.name for i in request.inputs]
        raise ProtocolError(
            f"send exactly one input, {IMAGE_INPUT!r} (encoded images) or {manifest.input.name!r} "
            f"(preprocessed FP32 tensor); got {names}"
        )
    inputs, used = _parse_input(request.inputs[0], binary, manifest, max_images)
    if used != len(binary):
        raise ProtocolError(
            f"{len(binary) - used} bytes of binary data after the JSON header are not claimed by any "
            f"input's binary_data_size"
        )
    outputs = request.outputs or []
    for output in outputs:
        if output.name != PROBABILITIES:
            raise ProtocolError(f"unknown output {output.name!r}; this model has {PROBABILITIES!r}")
    return InferenceRequest(
        id=request.id,
        inputs=inputs,
        outputs=[
            RequestedOutput(o.name, o.parameters.classification, o.parameters.binary_data)
            if o.parameters is not None
            else RequestedOutput(o.name)
            for o in outputs
        ],
        binary_data_output=request.parameters is not None and request.parameters.binary_data_output,
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


def _parse_input(
    tensor: RequestInput, binary: bytes, manifest: Manifest, max_images: int
) -> tuple[EncodedImages | Tensor, int]:
    """(the batch, bytes of ``binary`` it used)."""
    name, datatype, shape = tensor.name, tensor.datatype, tensor.shape
    binary_size = tensor.parameters.binary_data_size if tensor.parameters is not None else None
    if binary_size is not None and tensor.data is not None:
        raise ProtocolError(f"input {name!r}: give either JSON data or binary_data_size, not both")
    if binary_size is None and tensor.data is None:
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
        files = _bytes_elements(raw, name) if raw is not None else _base64_elements(tensor.data, name)
        if len(files) != count:
            raise ProtocolError(f"input {name!r}: shape {shape} says {count} images, data has {len(files)}")
        return EncodedImages(files), binary_size or 0
    if name == manifest.input.name:
        if datatype != "FP32":
            raise ProtocolError(f"input {name!r} must have datatype FP32, got {datatype!r}")
        _check_tensor_shape(shape, manifest, max_images)
        array = _fp32(raw, tensor.data, shape, name)
        return Tensor(array), binary_size or 0
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
    files = []
    for index, element in enumerate(_flatten(data)):
        if not isinstance(element, str):
            raise ProtocolError(f"input {name!r}: element {index} must be a base64 string")
        hint = (
            " (BYTES in JSON carry base64-encoded image files; send raw bytes with the binary tensor "
            "data extension)"
        )
        files.append(decode_base64(element, f"input {name!r}: element {index}", hint, ProtocolError))
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


# --- responses ----------------------------------------------------------------------------------


def classification_strings(probabilities: np.ndarray, labels: list[str], k: int) -> list[list[str]]:
    """Triton's ``"<value>:<index>:<label>"`` for the ``k`` most probable classes of each row
    (``service.engine.inference.top_k``, as every route ranks); ``value`` is the probability as
    float32's shortest round-trip text."""
    return [
        [f"{np.float32(r.probability)!s}:{r.class_index}:{r.label}" for r in top_k(row, labels, k)]
        for row in probabilities
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
