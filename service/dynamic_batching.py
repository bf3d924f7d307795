"""Dynamic batching across requests: requests for one model that queue while it runs go to
ONNX Runtime together, as one batch.

The anchors are Triton's dynamic batcher (``max_queue_delay_microseconds``,
https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/batcher.html),
TorchServe's ``batch_size`` / ``max_batch_delay`` and MLServer's adaptive batching
(``max_batch_size`` / ``max_batch_time``). Here:

- Each request decodes and preprocesses its own image in a worker thread (``prepare``), in
  parallel with the other requests and with the batch that is running. Its errors (bad,
  unsupported, oversized image) are its own: a request that fails there never reaches the queue.
- The prepared tensor joins the model's queue. When no batch of the model is running, the queue
  goes to ONNX Runtime at once (a lone request never waits for company; one that finds the
  model idle prepares and runs in a single worker call, ``classify_upload``); while one runs, new
  tensors wait and the next run takes up to ``max_batch_size`` images. With more than one
  runner, a free runner waits up to ``max_delay`` seconds for tensors that are still being
  prepared, never for requests that have not arrived.
- A batch that ONNX Runtime rejects is re-run one request at a time, so only the request that
  fails gets the error.

Everything but the ONNX Runtime call happens on the event loop (one thread): the queue needs no
lock. Lambda serves one request per environment, so the service builds no batcher there
(``Settings.dynamic_batching``).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import anyio
import numpy as np

from .inference import run
from .prediction import Timed, predict_upload, prepare, rank
from .registry import LoadedModel
from .stages import INFERENCE, stage_times_var

Runner = Callable[[LoadedModel, np.ndarray], np.ndarray]


class BatchObserver(Protocol):
    """Where the batcher reports what it does (``service.metrics.Metrics`` implements it)."""

    def observe_batch(self, model: str, size: int, queue_seconds: Sequence[float]) -> None:
        """One ONNX Runtime call of ``size`` images; each request's seconds in the queue."""

    def set_queue_depth(self, model: str, images: int) -> None:
        """Images waiting in the model's queue now (excluding the batches running)."""


@dataclass
class _Waiting:
    tensor: np.ndarray  # float32 (k, *sample_shape), k >= 1
    future: asyncio.Future[Batched]
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class Batched:
    """A request's class probabilities float64 (k, classes), its seconds in the queue and in
    the ONNX Runtime call of its batch (shared with its batch neighbours), and that batch's
    images."""

    probabilities: np.ndarray
    queue_seconds: float
    run_seconds: float
    batch_images: int = 1
    run_window_ns: tuple[int, int] = (0, 0)  # wall clock (time.time_ns) at the call's start, end

    def record_stage(self) -> None:
        """Count the batch's ONNX Runtime call as the current request's ``inference`` stage
        (``service.stages``: access log, EMF, and with tracing a child span of the request's
        span over the call's time); the call itself ran outside the request's context."""
        times = stage_times_var.get()
        if times is None:
            return
        times.batch_size += self.batch_images
        times.add(INFERENCE, self.run_seconds)
        if times.tracer is not None:
            start, end = self.run_window_ns
            attributes = {"edge_infer.batch_size": self.batch_images}
            times.tracer.start_span(INFERENCE, start_time=start, attributes=attributes).end(end_time=end)


class DynamicBatcher:
    """The request queue of one model, and the ONNX Runtime calls that drain it.

    Args:
        model: the loaded model; its session must be safe to run concurrently
            (``InferenceSession.run`` is).
        max_batch_size: most images in one ONNX Runtime call (a request with more images
            than that runs alone, in slices of ``chunk``).
        max_delay: seconds a free runner may wait for tensors still being prepared while
            another batch of the model runs; 0 = never wait.
        runners: ONNX Runtime calls of this model at once (the worker plan's ``runners``).
        chunk: images per ONNX Runtime call for a request larger than ``max_batch_size``.
        observer: receives batch sizes, queue waits and the queue depth (metrics), or None.
        runner: the blocking call, ``service.inference.run`` by default.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        max_batch_size: int,
        max_delay: float = 0.0,
        runners: int = 1,
        chunk: int | None = None,
        observer: BatchObserver | None = None,
        runner: Runner = run,
    ) -> None:
        if max_batch_size < 1 or runners < 1 or max_delay < 0:
            raise ValueError(f"bad batcher limits: {max_batch_size=}, {runners=}, {max_delay=}")
        self.model = model
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay
        self.runners = runners
        self.chunk = chunk or max_batch_size
        self._observer = observer
        self._runner = runner
        self._queue: deque[_Waiting] = deque()
        self._running = 0
        self._preparing = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def queued_images(self) -> int:
        """Images waiting for a runner (not those in a running batch)."""
        return sum(len(w.tensor) for w in self._queue)

    @property
    def running(self) -> int:
        """ONNX Runtime calls of this model in progress."""
        return self._running

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Around a request's decode + preprocess: a free runner may wait for it (``max_delay``)."""
        self._preparing += 1
        try:
            yield
        finally:
            self._preparing -= 1
            self._dispatch()  # a runner waiting for this request must not wait in vain

    def idle(self) -> bool:
        """Nothing of this model running, queued or being prepared."""
        return self._running == 0 and not self._queue and self._preparing == 0

    @contextmanager
    def running_alone(self) -> Iterator[None]:
        """Around a request that prepares *and* runs in one worker call because the model was
        idle: it counts as a running batch of one (requests arriving meanwhile queue behind it),
        and saves the second thread hop, which costs a GIL hand-over (~0.1-0.7 ms measured
        here) that a lone request would pay for no batching gain."""
        self._running += 1
        try:
            yield
        except BaseException:
            raise
        else:  # a request whose image was refused never reached ONNX Runtime: not a batch
            if self._observer is not None:
                self._observer.observe_batch(self.model.name, 1, [0.0])
        finally:
            self._running -= 1
            self._dispatch()

    async def infer(self, tensor: np.ndarray) -> Batched:
        """Class probabilities float64 (k, classes) for float32 ``tensor`` (k, *sample_shape).

        Raises what ONNX Runtime raised for this request alone (its batch neighbours are re-run
        without it). Cancelling the caller (client gone) drops its tensor if still queued.
        """
        waiting = _Waiting(tensor, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._dispatch()
        return await waiting.future

    def _dispatch(self) -> None:
        """Start batches while a runner is free and images wait."""
        self._drop_cancelled()
        while self._queue and self._running < self.runners:
            if self._should_wait():
                return
            batch = self._take()
            self._running += 1
            # A context of its own: the batch serves several requests, none of whose request
            # id or stage timings it should carry.
            task = asyncio.get_running_loop().create_task(self._run(batch), context=contextvars.Context())
            self._tasks.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._tasks.discard)
            self._drop_cancelled()
        self._report_depth()

    def _should_wait(self) -> bool:
        """True (and a timer set) when a free runner should wait for tensors being prepared."""
        if self.max_delay <= 0 or self._running == 0 or self._preparing == 0:
            return False
        if self.queued_images >= self.max_batch_size:
            return False
        remaining = self._queue[0].enqueued + self.max_delay - time.perf_counter()
        if remaining <= 0:
            return False
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(remaining, self._timer_fired)
        self._report_depth()
        return True

    def _timer_fired(self) -> None:
        self._timer = None
        self._dispatch()

    def _take(self) -> list[_Waiting]:
        """The next batch: queued requests in order, up to ``max_batch_size`` images (at least one)."""
        batch = [self._queue.popleft()]
        images = len(batch[0].tensor)
        while self._queue and images + len(self._queue[0].tensor) <= self.max_batch_size:
            waiting = self._queue.popleft()
            if not waiting.future.done():
                batch.append(waiting)
                images += len(waiting.tensor)
        return batch

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].future.done():
            self._queue.popleft()

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.set_queue_depth(self.model.name, self.queued_images)

    async def _run(self, batch: list[_Waiting]) -> None:
        started, started_ns = time.perf_counter(), time.time_ns()
        try:
            waits = [started - w.enqueued for w in batch]
            if self._observer is not None:
                self._observer.observe_batch(self.model.name, sum(len(w.tensor) for w in batch), waits)
            try:
                tensor = batch[0].tensor if len(batch) == 1 else np.concatenate([w.tensor for w in batch])
                output = await anyio.to_thread.run_sync(partial(self._run_chunks, tensor))
            except Exception as exc:  # noqa: BLE001 - handed to the requests, never swallowed
                if len(batch) == 1:
                    _fail(batch[0], exc)
                else:
                    await self._run_alone(batch, waits)
                return
            seconds, window = time.perf_counter() - started, (started_ns, time.time_ns())
            offset = 0
            for waiting, wait in zip(batch, waits, strict=True):
                rows = output[offset : offset + len(waiting.tensor)]
                offset += len(waiting.tensor)
                if not waiting.future.done():
                    waiting.future.set_result(Batched(rows, wait, seconds, len(tensor), window))
        finally:
            self._running -= 1
            self._dispatch()

    async def _run_alone(self, batch: list[_Waiting], waits: list[float]) -> None:
        """Re-run each request of a failed batch on its own: each gets its own answer or error."""
        for waiting, wait in zip(batch, waits, strict=True):
            if waiting.future.done():
                continue
            started, started_ns = time.perf_counter(), time.time_ns()
            try:
                output = await anyio.to_thread.run_sync(partial(self._run_chunks, waiting.tensor))
            except Exception as exc:  # noqa: BLE001 - this request's own error
                _fail(waiting, exc)
            else:
                if not waiting.future.done():
                    elapsed, window = time.perf_counter() - started, (started_ns, time.time_ns())
                    waiting.future.set_result(Batched(output, wait, elapsed, len(waiting.tensor), window))

    def _run_chunks(self, tensor: np.ndarray) -> np.ndarray:
        if len(tensor) <= self.max_batch_size:
            return self._runner(self.model, tensor)
        parts = [
            self._runner(self.model, tensor[i : i + self.chunk]) for i in range(0, len(tensor), self.chunk)
        ]
        return np.concatenate(parts)


def _fail(waiting: _Waiting, exc: Exception) -> None:
    if not waiting.future.done():
        waiting.future.set_exception(exc)


@dataclass
class Batchers:
    """One ``DynamicBatcher`` per served model, built on first use with the same limits."""

    max_batch_size: int
    max_delay: float
    runners: int
    chunk: int
    observer: BatchObserver | None = None
    _by_model: dict[str, DynamicBatcher] = field(default_factory=dict)

    def for_model(self, model: LoadedModel) -> DynamicBatcher:
        batcher = self._by_model.get(model.name)
        if batcher is None or batcher.model is not model:
            batcher = DynamicBatcher(
                model,
                max_batch_size=self.max_batch_size,
                max_delay=self.max_delay,
                runners=self.runners,
                chunk=self.chunk,
                observer=self.observer,
            )
            self._by_model[model.name] = batcher
        return batcher

    def queued_images(self) -> int:
        """Images waiting in every model's queue."""
        return sum(b.queued_images for b in self._by_model.values())


async def classify_upload(
    batcher: DynamicBatcher, workers: anyio.CapacityLimiter, data: bytes, max_pixels: int, k: int
) -> Timed:
    """One uploaded file through the batcher: ``prepare`` in a worker thread (at most
    ``workers`` at once), then the model's queue, then the ranking.

    ``Timed.seconds`` is the work done for the request: its decode + preprocess plus its batch's
    ONNX Runtime call (the queue wait is reported apart, ``BatchObserver.observe_batch``).
    Raises the ``ServiceError`` of ``prepare`` (400/413/415) before anything is queued.
    """
    if batcher.idle():
        with batcher.running_alone():
            return await anyio.to_thread.run_sync(
                partial(predict_upload, batcher.model, data, max_pixels, k), limiter=workers
            )
    start = time.perf_counter()
    with batcher.preparing():
        tensor = await anyio.to_thread.run_sync(
            partial(prepare, batcher.model, data, max_pixels), limiter=workers
        )
    prepared = time.perf_counter() - start
    batched = await batcher.infer(tensor)
    batched.record_stage()
    (ranked,) = rank(batcher.model, batched.probabilities, k)
    return Timed(ranked, prepared + batched.run_seconds)
