"""Errors the service raises on purpose, each with the HTTP status it becomes.

No web framework here: the engine and image code raise these, and ``service.api.error_responses``
(the one place that builds an error response) turns them into HTTP.
"""

from __future__ import annotations

from typing import Any


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

    The load-time contract (``service.engine.contract``) should make this unreachable; if it is
    reached anyway the fault is the deployment's, so it is never reported as a bad image.
    """


class ModelUnavailable(ServiceError):
    """503: the model is known but could not be loaded or verified (see ``/health``)."""

    status_code = 503


class Overloaded(ServiceError):
    """503: too many predictions already in progress; sent with ``Retry-After``."""

    status_code = 503


class NoDigit(ServiceError):
    """422: the image decoded, but holds no digit to read (``POST /models/{name}/number``)."""

    status_code = 422
