"""ASGI middleware that refuses request bodies over a byte limit without buffering them.

Starlette has no body-size limit of its own. The declared ``Content-Length`` is checked before
the application runs; chunked or lying bodies are counted as they stream and cut off at the
limit, so an oversized upload never sits whole in memory.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.error_responses import error_response
from service.errors import BadRequest, PayloadTooLarge


class BodySizeLimit:
    """Refuse bodies over ``max_bytes``: 413 from the declared length, or cut off mid-stream.

    Its responses come from ``service.api.error_responses.error_response`` like every other error.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await error_response(BadRequest("invalid Content-Length header"), scope["path"])(
                scope, receive, send
            )
            return
        if declared is not None and declared > self.max_bytes:
            detail = f"request body is {declared} bytes; limit is {self.max_bytes}"
            await error_response(PayloadTooLarge(detail), scope["path"])(scope, receive, send)
            return
        received = 0
        limit = self.max_bytes

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's body read; the app's handler turns it into 413.
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared length, None when absent, -1 when malformed."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None
