"""W3C Trace Context: continue a caller's trace, name this request's span, say both in the response.

https://www.w3.org/TR/trace-context/: a ``traceparent`` header is
``{version:2 hex}-{trace-id:32 hex}-{parent-id:16 hex}-{trace-flags:2 hex}``; an all-zero trace
or parent id, version ``ff``, or upper-case hex make it invalid, and an invalid one is ignored
(a new trace starts). Versions above ``00`` may append fields after the flags; the first four are
read (section 3.2.4, "Versioning of traceparent").

Behind an AWS load balancer or an API Gateway with X-Ray, requests carry
``X-Amzn-Trace-Id: Root=1-{8 hex time}-{24 hex};Parent={16 hex};Sampled={0|1}`` instead; its
root is the same 128-bit trace id written differently (the mapping the OpenTelemetry AWS X-Ray
propagator uses: time and random parts concatenated), so the trace is continued from it when no
``traceparent`` came (https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader).

Every request gets a fresh 64-bit span id; the response's ``traceparent`` carries the trace id
and that span id, and the JSON log lines of the request carry both (``service.observability.logs``).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
XRAY_HEADER = "x-amzn-trace-id"

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = 0x01
# Longest tracestate kept: 32 list members of at most 256 characters each, plus commas.
_MAX_TRACESTATE = 32 * 257


@dataclass(frozen=True)
class TraceContext:
    """The trace a request belongs to.

    ``trace_id``: 32 lower-case hex (128 bits). ``span_id``: this request's span, 16 hex.
    ``parent_id``: the caller's span, 16 hex, or None when this request started the trace.
    ``flags``: the trace-flags byte (bit 0 = sampled). ``tracestate``: the caller's, passed on as is.
    """

    trace_id: str
    span_id: str
    parent_id: str | None = None
    flags: int = 0
    tracestate: str | None = None

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    @property
    def traceparent(self) -> str:
        """This span as a version-00 ``traceparent`` value."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"


# The current request's trace (set by the request middleware, copied into worker threads).
trace_context_var: ContextVar[TraceContext | None] = ContextVar("trace_context", default=None)


def new_span_id() -> str:
    """16 random hex digits, never all zeros (an all-zero id is invalid)."""
    while True:
        span = os.urandom(8).hex()
        if span != _ZERO_SPAN:
            return span


def new_trace_id() -> str:
    """32 random hex digits, never all zeros."""
    while True:
        trace = os.urandom(16).hex()
        if trace != _ZERO_TRACE:
            return trace


def parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """(trace id, parent id, flags) of a valid ``traceparent``, else None.

    Invalid: not matching the format, version ``ff``, all-zero trace or parent id, a version
    ``00`` header with anything after the flags.
    """
    match = _TRACEPARENT.match(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if version == "00" and rest:
        return None
    return trace_id, parent_id, int(flags, 16)


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and set(value) <= _HEX


def parse_xray(value: str) -> tuple[str, str | None, int] | None:
    """(trace id, parent id or None, flags) from an ``X-Amzn-Trace-Id`` header, else None.

    The header is ``;``-separated ``key=value`` fields; ``Root`` is ``1-{8 hex}-{24 hex}``.
    """
    fields = dict(part.strip().partition("=")[::2] for part in value.split(";"))
    version, _, rest = fields.get("Root", "").partition("-")
    epoch, _, unique = rest.partition("-")
    if version != "1" or not _is_hex(epoch, 8) or not _is_hex(unique, 24):
        return None
    trace_id = epoch + unique
    if trace_id == _ZERO_TRACE:
        return None
    parent = fields.get("Parent", "")
    parent_id = parent if _is_hex(parent, 16) and parent != _ZERO_SPAN else None
    return trace_id, parent_id, SAMPLED if fields.get("Sampled") == "1" else 0


def from_headers(headers: list[tuple[bytes, bytes]]) -> TraceContext:
    """The trace of a request with these ASGI headers (lower-case names), with a new span id.

    ``traceparent`` wins; without a valid one, ``X-Amzn-Trace-Id``; without either, a new trace.
    Per the specification, several ``traceparent`` headers make it invalid; several
    ``tracestate`` headers are joined with commas.
    """
    traceparents: list[str] = []
    tracestates: list[str] = []
    xray: str | None = None
    for key, raw in headers:
        if key == b"traceparent":
            traceparents.append(raw.decode("latin-1"))
        elif key == b"tracestate":
            tracestates.append(raw.decode("latin-1").strip())
        elif key == b"x-amzn-trace-id" and xray is None:
            xray = raw.decode("latin-1")
    parsed = parse_traceparent(traceparents[0]) if len(traceparents) == 1 else None
    if parsed is not None:
        trace_id, parent_id, flags = parsed
        state = ",".join(s for s in tracestates if s)[:_MAX_TRACESTATE] or None
        return TraceContext(trace_id, new_span_id(), parent_id, flags, state)
    from_xray = parse_xray(xray) if xray is not None else None
    if from_xray is not None:
        trace_id, xray_parent, flags = from_xray
        return TraceContext(trace_id, new_span_id(), xray_parent, flags)
    return TraceContext(new_trace_id(), new_span_id())
