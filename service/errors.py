"""Errors the service raises on purpose, each with the HTTP status it becomes, and the one
function that turns any of them into a response.

Every error response of the service is built by ``error_response``: route errors (through the
handler ``app.py`` registers), the body-size middleware's 400/413 and the request middleware's
last-resort 500. The body is ``{"detail": "..."}``; the detail says what was wrong with the
request and never carries a stack trace or a server path.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse


class ServiceError(Exception):
    """Base class: ``status_code`` is the HTTP status, ``detail`` the message for the client."""

    status_code = 500

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail: str | list[Any] = detail
        self.headers = headers


class HTTPError(ServiceError):
    """Any other HTTP error status (Starlette's 404 for an unknown path, 405, ...)."""

    def __init__(self, status_code: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers)
        self.status_code = status_code


class BadRequest(ServiceError):
    """400: the request itself is malformed (e.g. an invalid ``Content-Length`` header)."""

    status_code = 400


class BadImage(BadRequest):
    """400: the body is empty, truncated or cannot be decoded as the image it claims to be."""


class Unauthorized(ServiceError):
    """401: API keys are configured and the request carries none, or a wrong one."""

    status_code = 401


class ModelNotFound(ServiceError):
    """404: no model of that name is known."""

    status_code = 404


class PayloadTooLarge(ServiceError):
    """413: the body exceeds the byte limit, or the image exceeds the pixel limit."""

    status_code = 413


class UnsupportedImage(ServiceError):
    """415: the body is not an image, or is an image format the service does not accept."""

    status_code = 415


class InvalidForm(ServiceError):
    """422: the multipart form lacks the ``file`` field, or it is not a file."""

    status_code = 422


class InvalidParameters(ServiceError):
    """422: path or query parameters fail validation; ``detail`` is FastAPI's list of errors."""

    status_code = 422

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid parameters")
        self.detail = errors


class InternalError(ServiceError):
    """500: a fault of the server, not of the request; the detail stays generic."""

    status_code = 500

    def __init__(self, detail: str = "internal error", headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers)


class ModelMisconfigured(InternalError):
    """500: the model's manifest and what its preprocessing or graph produce disagree.

    The load-time contract (``service.contract``) should make this unreachable; if it is
    reached anyway the fault is the deployment's, so it is never reported as a bad image.
    """


class ModelUnavailable(ServiceError):
    """503: the model is known but could not be loaded or verified (see ``/health``)."""

    status_code = 503


class Overloaded(ServiceError):
    """503: too many predictions already in progress; sent with ``Retry-After``."""

    status_code = 503


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
