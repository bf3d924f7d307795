"""Admission and scheduling of one app's predictions: how many are taken at once, on which
worker threads they run, and (off Lambda) the dynamic batcher of each model.

One ``Admission`` object per app (``create_app`` builds it from the settings and the worker
plan, ``service.engine.cpus``); the protocol adapters call

    async with admission.admit():                  # 503 at once when full
        classified = await admission.classify(model, inputs, k)

and ``classify`` runs ``service.engine.pipeline.classify`` in a worker thread, or, with dynamic
batching, prepares the inputs in worker threads and queues their tensors for the model's next
ONNX Runtime batch (``service.engine.dynamic_batching``). No web framework here: anyio only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import anyio

from service.engine.pipeline import Classified, Inputs, classify
from service.engine.registry import LoadedModel
from service.errors import Overloaded
from service.images import allocator

if TYPE_CHECKING:  # not imported at run time: Lambda (no batching) never loads the module
    from service.engine.dynamic_batching import Batchers, DynamicBatcher

T = TypeVar("T")

# Requests in flight at once that count as a burst: after one drains, free heap pages go back
# to the OS (service.images.allocator.BurstRelease). Four is twice a 2-vCPU host's inference workers.
BURST_IN_FLIGHT = 4


class Admission:
    """The bounds on concurrent predictions of one app, and where they run.

    Args:
        max_pending: predictions admitted at once (reading their body, being prepared, queued
            for a batch or running); beyond that a request gets a 503 before its body is read
            (``settings.max_pending_predictions``).
        workers: worker threads at once (decode, preprocess and, without dynamic batching,
            ONNX Runtime), the worker plan's ``workers``.
        batchers: the per-model dynamic batchers, None when batching is off (Lambda).
        max_pixels: the largest image decoded (``settings.max_image_pixels``); larger is a 413.
        chunk: images per ONNX Runtime call without batching (``settings.batch_chunk``).
        burst: in-flight requests that make a burst; when one drains, free heap pages are
            returned to the OS (``allocator.BurstRelease``).
    """

    def __init__(
        self,
        max_pending: int,
        workers: int,
        batchers: Batchers | None = None,
        *,
        max_pixels: int,
        chunk: int | None = None,
        burst: int = BURST_IN_FLIGHT,
    ) -> None:
        self.max_pixels = max_pixels
        self.chunk = chunk
        self.pending = anyio.CapacityLimiter(max_pending)
        self.workers = anyio.CapacityLimiter(workers)
        self.batchers = batchers
        self._bursts = allocator.BurstRelease(burst)

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one admission token for the block, or refuse at once.

        One token per request: anyio ties a token to the task holding it, and every request is
        its own task (uvicorn, Mangum); a batch request is admitted once, not per image.

        Raises:
            Overloaded (503, ``Retry-After: 1``): every token is taken.
        """
        try:
            self.pending.acquire_nowait()
        except anyio.WouldBlock:
            raise Overloaded(
                f"server busy: {self.pending.borrowed_tokens} predictions in progress; retry shortly",
                headers={"Retry-After": "1"},
            ) from None
        self._bursts.entered(self.pending.borrowed_tokens)
        try:
            yield
        finally:
            self.pending.release()
            self._bursts.left(self.pending.borrowed_tokens)

    async def in_worker(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a worker thread, at most ``workers`` at once, so the event loop
        (``/health``, other requests' bodies) keeps going."""
        return await anyio.to_thread.run_sync(partial(func, *args), limiter=self.workers)

    def batcher(self, model: LoadedModel) -> DynamicBatcher | None:
        """``model``'s dynamic batcher, or None when batching is off."""
        return None if self.batchers is None else self.batchers.for_model(model)

    async def classify(self, model: LoadedModel, inputs: Inputs, k: int | None) -> Classified:
        """``service.engine.pipeline.classify`` for one request, off the event loop: in one
        worker thread, or through the model's dynamic batcher when batching is on."""
        batcher = self.batcher(model)
        if batcher is None:
            chain = partial(classify, model, inputs, k, max_pixels=self.max_pixels, chunk=self.chunk)
            return await anyio.to_thread.run_sync(chain, limiter=self.workers)
        from service.engine.dynamic_batching import classify_batched

        return await classify_batched(batcher, self.workers, inputs, k, self.max_pixels)
