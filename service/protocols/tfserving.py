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

import base64
import binascii
import json
from typing import Any

from ..errors import PayloadTooLarge
from .oip import ProtocolError

IMAGE_KEY = "image_bytes"


def parse_instances(body: bytes, max_images: int) -> tuple[list[bytes], int | None]:
    """The encoded images of a V1 request, in order, and its ``parameters.top_k`` if given.

    Raises:
        ProtocolError (400): not JSON, no ``instances``/``inputs`` list, an instance without
            ``b64`` data, invalid base64, a bad ``top_k``.
        PayloadTooLarge (413): more than ``max_images`` instances.
    """
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise ProtocolError('body must be a JSON object with "instances"')
    if "instances" in document:
        instances = document["instances"]
    elif "inputs" in document:
        inputs = document["inputs"]
        instances = inputs.get(IMAGE_KEY) if isinstance(inputs, dict) else inputs
    else:
        raise ProtocolError('body must have "instances": [{"image_bytes": {"b64": "<base64 image>"}}, ...]')
    if not isinstance(instances, list) or not instances:
        raise ProtocolError('"instances" must be a non-empty list')
    if len(instances) > max_images:
        raise PayloadTooLarge(
            f"{len(instances)} instances in one request; limit is {max_images} (EDGE_MAX_BATCH_IMAGES)"
        )
    files = [_instance_bytes(instance, index) for index, instance in enumerate(instances)]
    return files, _top_k(document.get("parameters"))


def _instance_bytes(instance: Any, index: int) -> bytes:
    value = instance.get(IMAGE_KEY, instance) if isinstance(instance, dict) else instance
    if not (isinstance(value, dict) and isinstance(value.get("b64"), str)):
        raise ProtocolError(
            f'instance {index}: expected {{"image_bytes": {{"b64": "<base64 image>"}}}} or {{"b64": "..."}}'
        )
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"instance {index}: b64 is not valid base64") from None


def _top_k(parameters: Any) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise ProtocolError('"parameters" must be an object')
    k = parameters.get("top_k")
    if k is None:
        return None
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ProtocolError("parameters.top_k must be a positive integer")
    return k
