"""JSON bodies on the native predict routes: ``{"image_base64": ...}`` or ``{"image_url": ...}``.

``Content-Type: application/json`` selects this reader instead of the upload reader; the image
then goes through the same steps as an upload (``service.prediction``) and gets the same
response and errors. Unknown fields are ignored, so a body such as
``{"user_id": 7, "image_url": "https://..."}`` (the shape of the classic image-URL APIs) works.
``top_k`` in the body, when given, wins over the query parameter.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import ConfigDict, Field, ValidationError
from starlette.requests import Request

from .config import Settings
from .dependencies import Limits
from .errors import BadRequest, InvalidParameters
from .prediction import admit, in_worker, predict_upload, respond
from .registry import LoadedModel
from .schemas import Prediction, WireModel
from .url_fetch import fetch_image

JSON_MEDIA_TYPE = "application/json"


class ImageJson(WireModel):
    """An image given inline (base64) or by URL; exactly one of the two."""

    model_config = ConfigDict(extra="ignore")

    image_base64: str | None = Field(
        None,
        description="The encoded image file (JPEG, PNG, HEIC, ...) in base64 (standard alphabet, padded).",
        examples=["iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAA..."],
    )
    image_url: str | None = Field(
        None,
        max_length=2048,
        description=(
            "An http(s) URL the server downloads the image from. Off unless the server sets "
            "EDGE_IMAGE_URLS=true; only global addresses, or the hosts in "
            "EDGE_IMAGE_URL_ALLOWED_HOSTS, are fetched."
        ),
        examples=["https://images.example.com/digit.png"],
    )
    top_k: int | None = Field(None, ge=1, description="How many classes to return (overrides ?top_k).")


JSON_BODY_EXAMPLES = {
    "base64": {
        "summary": "Inline image",
        "value": {"image_base64": "iVBORw0KGgoAAAANSUhEUgAA...", "top_k": 3},
    },
    "url": {
        "summary": "Image URL (when enabled)",
        "value": {"user_id": 42, "image_url": "https://images.example.com/cat.jpg"},
    },
}


def is_json(request: Request) -> bool:
    """True when the body is declared JSON (``application/json`` or ``+json``)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE or media_type.endswith("+json")


def parse_image_json(body: bytes, max_top_k: int) -> ImageJson:
    """Validate a JSON body.

    Raises:
        BadRequest (400): not JSON, not an object, neither or both image fields.
        InvalidParameters (422): a field of the wrong type, or ``top_k`` out of range.
    """
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise BadRequest('JSON body must be an object: {"image_base64": "..."} or {"image_url": "..."}')
    try:
        parsed = ImageJson.model_validate(document)
    except ValidationError as exc:
        raise InvalidParameters(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
        ) from None
    if (parsed.image_base64 is None) == (parsed.image_url is None):
        raise BadRequest('send exactly one of "image_base64" or "image_url" in the JSON body')
    if parsed.top_k is not None and parsed.top_k > max_top_k:
        raise InvalidParameters(
            [{"type": "less_than_equal", "loc": ("body", "top_k"), "msg": f"Input should be <= {max_top_k}"}]
        )
    return parsed


def decode_base64_image(text: str) -> bytes:
    """The image bytes of a base64 string (whitespace and a ``data:...;base64,`` prefix allowed)."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image_base64 is not valid base64") from None


async def image_from_json(request: Request, settings: Settings) -> tuple[bytes, int | None]:
    """(the image bytes, the body's ``top_k`` or None) of a JSON predict request."""
    parsed = parse_image_json(await request.body(), settings.max_top_k)
    if parsed.image_base64 is not None:
        return decode_base64_image(parsed.image_base64), parsed.top_k
    assert parsed.image_url is not None
    return await fetch_image(parsed.image_url, settings.url_policy()), parsed.top_k


async def predict_json(
    request: Request, model: LoadedModel, k: int, settings: Settings, limits: Limits
) -> Prediction:
    """The single-image path for a JSON body: admit, read (and fetch), classify, respond."""
    async with admit(limits.admission):
        data, body_k = await image_from_json(request, settings)
        batcher = limits.batcher(model)
        if batcher is None:
            timed = await in_worker(
                limits.workers, predict_upload, model, data, settings.max_image_pixels, body_k or k
            )
        else:
            from .dynamic_batching import classify_upload

            timed = await classify_upload(
                batcher, limits.workers, data, settings.max_image_pixels, body_k or k
            )
    request.state.inference_seconds = timed.seconds
    return respond(model, timed.ranked)
