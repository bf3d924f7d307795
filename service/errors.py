"""Errors the service raises on purpose, each with the HTTP status it becomes.

All are turned into ``{"detail": "..."}`` JSON by the handlers registered in ``app.py``;
the detail says what was wrong with the request and never carries a stack trace or path.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: ``status_code`` is the HTTP status, ``detail`` the message for the client."""

    status_code = 500

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadImage(ServiceError):
    """400: the body is empty, truncated or cannot be decoded as the image it claims to be."""

    status_code = 400


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


class ModelUnavailable(ServiceError):
    """503: the model is known but could not be loaded or verified (see ``/health``)."""

    status_code = 503


class Unauthorized(ServiceError):
    """401: API keys are configured and the request carries none, or a wrong one."""

    status_code = 401


class Overloaded(ServiceError):
    """503: too many predictions already in progress; sent with ``Retry-After``."""

    status_code = 503
