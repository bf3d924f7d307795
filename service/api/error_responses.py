"""The one function that turns a ``service.errors.ServiceError`` into an HTTP response.

Every error response of the service is built here: route errors (through the handler ``app.py``
registers), the body-size middleware's 400/413 and the request middleware's last-resort 500. The
body is ``{"detail": "..."}``; the detail says what was wrong with the request and never carries
a stack trace or a server path.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from service.errors import ServiceError


def error_response(exc: ServiceError, path: str = "") -> JSONResponse:
    """The HTTP response for ``exc``: its status, ``{"detail": ...}`` and its headers.

    Under the protocol routes (``path`` starting ``/v1/`` or ``/v2``) the body also carries
    ``"error"``, the message as one string, which is what V1/V2 clients read (tritonclient
    raises it as ``InferenceServerException``).
    """
    body: dict[str, Any] = {"detail": exc.detail}
    if path == "/v2" or path.startswith(("/v1/", "/v2/")):
        body = {"error": _as_text(exc.detail), **body}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _as_text(detail: str | list[Any]) -> str:
    if isinstance(detail, str):
        return detail
    # FastAPI's validation errors: "query.top_k: Input should be ..." per error.
    parts = []
    for error in detail:
        if isinstance(error, dict):
            where = ".".join(str(p) for p in error.get("loc", ()))
            parts.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
        else:
            parts.append(str(error))
    return "; ".join(parts)
