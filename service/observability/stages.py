"""Per-request stage timings (decode, preprocess, inference), and their spans when tracing is on.

The request middleware puts a fresh ``StageTimes`` in ``stage_times_var`` for each request; the
prediction steps wrap their work in ``stage(name)``. anyio copies the context into worker
threads, so the steps that run there add to the same object. Outside a request (offline tools,
benchmarks) ``stage`` only runs the block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

DECODE = "decode"
PREPROCESS = "preprocess"
INFERENCE = "inference"
STAGES = (DECODE, PREPROCESS, INFERENCE)


@dataclass
class StageTimes:
    """Seconds spent in each stage of one request, summed over its images (a batch request
    decodes several), and the images in its inference calls.

    ``tracer``: an OpenTelemetry ``Tracer`` when spans are exported
    (``service.observability.otel``), else None.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    batch_size: int = 0
    tracer: Any = None

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


stage_times_var: ContextVar[StageTimes | None] = ContextVar("stage_times", default=None)


@contextmanager
def stage(name: str, batch_size: int | None = None) -> Iterator[None]:
    """Time the block as stage ``name`` of the current request (and trace it as a child span
    of the request's span when tracing is on). ``batch_size``: images in an inference call."""
    times = stage_times_var.get()
    if times is None:
        yield
        return
    if batch_size is not None:
        times.batch_size += batch_size
    start = time.perf_counter()
    try:
        if times.tracer is None:
            yield
        else:
            attributes = {} if batch_size is None else {"edge_infer.batch_size": batch_size}
            with times.tracer.start_as_current_span(name, attributes=attributes):
                yield
    finally:
        times.add(name, time.perf_counter() - start)
