"""Structured logging: one JSON object per line, each carrying the current request id.

stdlib ``logging`` only (no extra dependency in the Lambda package). Lambda ships stdout to
CloudWatch Logs, where JSON lines are queryable field by field with Logs Insights; container
platforms collect stdout the same way. ``extra={...}`` fields passed to a logger call become
top-level keys.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from service.observability.trace_context import trace_context_var

# Set by the request middleware for the duration of one request. anyio copies the context into
# worker threads, so log lines from inference threads carry the id too.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "request_id", "trace_id", "span_id", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """Format a record as a single-line JSON object.

    Keys: ``time`` (ISO 8601, UTC, ms), ``level``, ``logger``, ``message``, ``request_id``,
    ``trace_id`` and ``span_id`` (W3C trace context, ``service.observability.trace_context``; when inside a
    request), every ``extra`` field, and ``exception`` (the formatted traceback) when
    the record has one. Tracebacks go to logs only, never into HTTP responses.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace = trace_context_var.get()
        if trace is not None:
            entry["trace_id"], entry["span_id"] = trace.trace_id, trace.span_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to plain-text records (the JSON formatter reads the context itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        return True


_HANDLER_NAME = "edge-infer"


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Send the service's logs (and uvicorn's) to stdout, as JSON lines or plain text.

    Idempotent: building several apps in one process keeps one handler per logger. The
    ``service`` logger does not propagate, so Lambda's root handler does not print each line a
    second time. uvicorn's startup and error messages (logger ``uvicorn``, which
    ``uvicorn.error`` propagates to) get the same format; uvicorn's per-request access line is
    switched off because the request middleware logs a richer one (request id, route, model,
    latency).
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.name = _HANDLER_NAME
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    for name in ("service", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True
