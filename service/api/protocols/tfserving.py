"""TF-Serving / KServe V1 JSON codec: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out.

Sources: TF-Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest, "Encoding
binary values": ``{"b64": "..."}`` objects carry binary data) and KServe's V1 protocol
(https://kserve.github.io/website/docs/concepts/architecture/data-plane/v1-protocol), whose
image examples send ``{"instances": [{"image_bytes": {"b64": "..."}}]}``.

Accepted instances (each one encoded image file):
  ``{"image_bytes": {"b64": "..."}}`` (other keys in the object, e.g. ``"key"``, are ignored),
  ``{"b64": "..."}``, or the columnar ``{"inputs": {"image_bytes": [{"b64": ...}, ...]}}`` /
  ``{"inputs": [{"b64": ...}, ...]}``.
Errors are ``{"error": "..."}``; one bad instance fails the request, as in TF-Serving.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.encoding import decode_base64, load_json
from service.api.protocols.oip import ProtocolError, protocol_error
from service.errors import PayloadTooLarge

IMAGE_KEY = "image_bytes"
EXPECTED_INSTANCE = '{"image_bytes": {"b64": "<base64 image>"}} or {"b64": "..."}'


class _Body(BaseModel):
    """A JSON object of the protocol: strict types, unknown keys (e.g. ``"key"``) ignored,
    validator built on first use (``defer_build``)."""

    model_config = ConfigDict(defer_build=True, strict=True, extra="ignore")


class B64(_Body):
    """Binary data in TF-Serving's JSON encoding."""

    b64: str = Field(description="The encoded image file (JPEG, PNG, ...), base64.")


class ImageBytesInstance(_Body):
    image_bytes: B64


Instance = ImageBytesInstance | B64


class V1Parameters(_Body):
    top_k: int | None = Field(None, ge=1, description="How many classes to return (overrides ?top_k).")


class V1PredictRequest(_Body):
    """A predict request: ``instances`` (row format) or ``inputs`` (columnar format)."""

    instances: list[Instance] | None = Field(
        None,
        json_schema_extra={"minItems": 1},  # checked by parse_instances, with the protocol's message
        examples=[[{"image_bytes": {"b64": "iVBORw0KGgoAAAANSUhEUgAA..."}}]],
    )
    inputs: dict[str, list[B64]] | list[B64] | None = Field(
        None, description='Columnar: {"image_bytes": [{"b64": ...}, ...]} or [{"b64": ...}, ...].'
    )
    parameters: V1Parameters | None = None


def parse_instances(body: bytes, max_images: int) -> tuple[list[bytes], int | None]:
    """The encoded images of a V1 request, in order, and its ``parameters.top_k`` if given.

    Raises:
        ProtocolError (400): not JSON, no ``instances``/``inputs`` list, an instance without
            ``b64`` data, invalid base64, a bad ``top_k``.
        PayloadTooLarge (413): more than ``max_images`` instances.
    """
    document = load_json(body, ProtocolError)
    if not isinstance(document, dict):
        raise ProtocolError('body must be a JSON object with "instances"')
    try:
        request = V1PredictRequest.model_validate(document)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        if len(loc) >= 3 and loc[0] == "instances":  # neither form of an instance
            raise ProtocolError(f"instance {loc[1]}: expected {EXPECTED_INSTANCE}") from None
        raise protocol_error(exc) from None
    if request.instances is not None:
        encoded = [i.image_bytes if isinstance(i, ImageBytesInstance) else i for i in request.instances]
    elif request.inputs is not None:
        columns = request.inputs
        encoded = columns.get(IMAGE_KEY, []) if isinstance(columns, dict) else columns
    else:
        raise ProtocolError(f'body must have "instances": [{EXPECTED_INSTANCE}, ...]')
    if not encoded:
        raise ProtocolError('"instances" must be a non-empty list')
    if len(encoded) > max_images:
        raise PayloadTooLarge(
            f"{len(encoded)} instances in one request; limit is {max_images} (EDGE_MAX_BATCH_IMAGES)"
        )
    files = [decode_base64(b.b64, f"instance {i}: b64", error=ProtocolError) for i, b in enumerate(encoded)]
    top_k = request.parameters.top_k if request.parameters is not None else None
    return files, top_k
