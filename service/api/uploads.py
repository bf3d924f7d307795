"""The image of a native predict request: a multipart ``file``, the raw body, or a JSON body
``{"image_base64": ...}`` / ``{"image_url": ...}``.

``Content-Type: application/json`` (or ``+json``) selects the JSON reader. Unknown JSON fields
are ignored, so a body such as ``{"user_id": 7, "image_url": "https://..."}`` (the shape of the
classic image-URL APIs) works; ``top_k`` in the body, when given, wins over the query parameter.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from service.api.encoding import decode_base64, load_json
from service.api.forms import in_memory_form
from service.api.openapi import schema_ref
from service.api.schemas import WireModel
from service.config import Settings
from service.errors import BadRequest, InvalidForm, InvalidParameters
from service.images.decode import ALLOWED_FORMATS
from service.images.url_fetch import fetch_image

UPLOAD_FIELD = "file"


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

IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "The image: a multipart form with the file in field `file` (`curl -F file=@digit.png`), "
            "the raw bytes as the body, or a JSON object with `image_base64` or `image_url` "
            f"(unknown fields ignored). Formats: {', '.join(ALLOWED_FORMATS)}."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": schema_ref(ImageJson), "examples": JSON_BODY_EXAMPLES},
        },
    }
}


def is_json(request: Request) -> bool:
    """True when the body is declared JSON (``application/json`` or ``+json``)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def parse_image_json(body: bytes) -> ImageJson:
    """Validate a native JSON body.

    Raises:
        BadRequest (400): not JSON, not an object, neither or both image fields.
        InvalidParameters (422): a field of the wrong type, or ``top_k`` below 1.
    """
    document = load_json(body)
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
    return parsed


async def read_image(request: Request, settings: Settings) -> tuple[bytes, int | None]:
    """(the image file's bytes, the body's ``top_k`` or None) of a native predict request.

    Raises:
        InvalidForm (422): a multipart form without a ``file`` part, or a text value there.
        BadRequest (400): a JSON body as ``parse_image_json`` refuses it; the URL errors of
            ``service.images.url_fetch`` (400/502/504). ``PayloadTooLarge`` (413) comes from
            the body-size middleware; malformed multipart is Starlette's 400.
    """
    if is_json(request):
        parsed = parse_image_json(await request.body())
        if parsed.image_base64 is not None:
            return decode_base64(parsed.image_base64, "image_base64"), parsed.top_k
        assert parsed.image_url is not None
        return await fetch_image(parsed.image_url, settings.url_policy()), parsed.top_k
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return await request.body(), None
    # Starlette turns multipart errors (too many files or fields, malformed) into 400.
    async with in_memory_form(request, max_files=1, max_fields=8) as form:
        upload = form.get(UPLOAD_FIELD)
        if upload is None:
            fields = ", ".join(repr(k) for k in form) or "none"
            raise InvalidForm(f"multipart body has no field {UPLOAD_FIELD!r} (fields sent: {fields})")
        if not isinstance(upload, UploadFile):
            raise InvalidForm(f"multipart field {UPLOAD_FIELD!r} must be a file, not a text value")
        return await upload.read(), None
