"""JSON and base64 as every wire format of the service reads them (native JSON bodies, KServe
V1, Open Inference Protocol): one parser, one decoder, the same errors. No web framework.

Sources: RFC 8259 (JSON: no ``NaN`` or ``Infinity``), RFC 4648 section 4 (base64, standard
alphabet, padded).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from service.errors import BadRequest


def load_json(body: bytes, error: type[BadRequest] = BadRequest) -> Any:
    """The JSON document of a request body (every JSON reader of the service uses this).

    Raises:
        error (a ``BadRequest``, 400): not JSON, ``NaN`` / ``Infinity`` (not JSON either), or
            nested too deep.
    """

    def refuse_constant(name: str) -> float:
        raise error(f"{name} is not valid JSON")

    try:
        return json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise error(f"body is not valid JSON: {str(exc)[:200]}") from None


def decode_base64(text: str, what: str, hint: str = "", error: type[BadRequest] = BadRequest) -> bytes:
    """The bytes of standard, padded base64 ``text`` (whitespace and a ``data:...;base64,``
    prefix allowed); every base64 field of every protocol goes through here.

    Raises:
        error (a ``BadRequest``, 400): "<what> is not valid base64<hint>".
    """
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not valid base64{hint}") from None
