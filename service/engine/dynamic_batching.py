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
  model idle prepares and runs in a single worker call, ``classify_batched``); while one runs, new
  tensors wait and the next run takes up to ``max_batch_size`` images. With more than one
  runner, a free runner waits up to ``max_delay`` seconds for tensors that are still being
  prepared, never for requests that have not arrived.
- A batch that ONNX Runtime rejects is re-run one request at a time, so only the request that
  fails gets the error.

Everything but the ONNX Runtime call happens on the event loop (one thread): the queue needs no
lock. The batch's tensors are copied together in the runner's thread, not on the event loop, into
a buffer each runner keeps: a fresh (8, 224, 224, 3) batch is a 4.8 MB mapping paged in anew on
every call (``service.images.allocator`` keeps blocks over 64 KiB out of the heap).

Lambda serves one request per environment, so the service builds no batcher there
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

from service.engine.inference import run
from service.engine.pipeline import (
    Classified,
    EncodedImages,
    Inputs,
    Prepared,
    Tensor,
    classify,
    postprocess,
    prepare,
    preprocess,
)
from service.engine.registry import LoadedModel
from service.errors import ServiceError
from service.observability.stages import INFERENCE, stage_times_var

Runner = Callable[[LoadedModel, np.ndarray], np.ndarray]


class BatchObserver(Protocol):
    """Where the batcher reports what it does (``service.observability.metrics.Metrics`` implements it)."""

    def observe_batch(self, model: str, size: int, queue_seconds: Sequence[float]) -> None:
        """One ONNX Runtime call of ``size`` images; each request's seconds in the queue."""

    def set_queue_depth(self, model: str, images: int) -> None:
        """Images waiting in the model's queue now (excluding the batches running)."""


@dataclass
class _Waiting:
    parts: Sequence[np.ndarray]  # float32 (k_i, *sample_shape) each, the request's images in order
    future: asyncio.Future[Batched]
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def images(self) -> int:
        return sum(len(p) for p in self.parts)


@dataclass
class _Alone:
    ran: bool = False


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
        (``service.observability.stages``: access log, EMF, and with tracing a child span of the request's
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
        runner: the blocking call, ``service.engine.inference.run`` by default.
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
        # Batch buffers, float32 (max(max_batch_size, chunk), *sample_shape): one per runner
        # busy at once, reused (list.pop/append are atomic; runner threads share the list).
        self._buffers: list[np.ndarray] = []

    @property
    def queued_images(self) -> int:
        """Images waiting for a runner (not those in a running batch)."""
        return sum(w.images for w in self._queue)

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
    def running_alone(self) -> Iterator[_Alone]:
        """Around a request that prepares *and* runs in one worker call because the model was
        idle: it counts as a running batch of one (requests arriving meanwhile queue behind it),
        and saves the second thread hop, a GIL hand-over that a lone request would pay for no
        batching gain (``benchmarks/http/throughput.py`` measures single-client latency). The block
        sets ``ran`` when the image reached ONNX Runtime (a refused one is not a batch)."""
        self._running += 1
        alone = _Alone()
        try:
            yield alone
        finally:
            self._running -= 1
            if alone.ran and self._observer is not None:
                self._observer.observe_batch(self.model.name, 1, [0.0])
            self._dispatch()

    async def infer(self, tensors: np.ndarray | Sequence[np.ndarray]) -> Batched:
        """Class probabilities float64 (k, classes) for one request's images: a float32 tensor
        (k, *sample_shape), or several whose rows add up to k (they are never stacked on the
        event loop).

        Raises what ONNX Runtime raised for this request alone (its batch neighbours are re-run
        without it). Cancelling the caller (client gone) drops its tensors if still queued.
        """
        parts = (tensors,) if isinstance(tensors, np.ndarray) else tuple(tensors)
        waiting = _Waiting(parts, asyncio.get_running_loop().create_future())
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
        images = batch[0].images
        while self._queue and images + self._queue[0].images <= self.max_batch_size:
            waiting = self._queue.popleft()
            if not waiting.future.done():
                batch.append(waiting)
                images += waiting.images
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
            images = sum(w.images for w in batch)
            if self._observer is not None:
                self._observer.observe_batch(self.model.name, images, waits)
            try:
                parts = [part for waiting in batch for part in waiting.parts]
                output = await anyio.to_thread.run_sync(partial(self._run_parts, parts))
            except Exception as exc:  # noqa: BLE001 - handed to the requests, never swallowed
                if len(batch) == 1:
                    _fail(batch[0], exc)
                else:
                    await self._run_alone(batch, waits)
                return
            seconds, window = time.perf_counter() - started, (started_ns, time.time_ns())
            offset = 0
            for waiting, wait in zip(batch, waits, strict=True):
                rows = output[offset : offset + waiting.images]
                offset += waiting.images
                if not waiting.future.done():
                    waiting.future.set_result(Batched(rows, wait, seconds, images, window))
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
                output = await anyio.to_thread.run_sync(partial(self._run_parts, waiting.parts))
            except Exception as exc:  # noqa: BLE001 - this request's own error
                _fail(waiting, exc)
            else:
                if not waiting.future.done():
                    elapsed, window = time.perf_counter() - started, (started_ns, time.time_ns())
                    waiting.future.set_result(Batched(output, wait, elapsed, waiting.images, window))

    def _run_parts(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities float64 (N, classes) for the rows of ``parts`` in order (blocking, in
        a runner thread): at most ``max_batch_size`` images per ONNX Runtime call, ``chunk`` for
        a request larger than that. One tensor runs as it is (sliced); several are copied into
        a reused batch buffer first."""
        images = sum(len(p) for p in parts)
        step = images if images <= self.max_batch_size else self.chunk
        if len(parts) == 1:
            outputs = [self._runner(self.model, parts[0][i : i + step]) for i in range(0, images, step)]
        else:
            rows = [part[i : i + 1] for part in parts for i in range(len(part))]
            buffer = self._borrow_buffer()
            try:
                outputs = []
                for start in range(0, images, step):
                    group = rows[start : start + step]
                    batch = np.concatenate(group, out=buffer[: len(group)])
                    outputs.append(self._runner(self.model, batch))
            finally:
                self._buffers.append(buffer)
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

    def _borrow_buffer(self) -> np.ndarray:
        """A free batch buffer, float32 (max(max_batch_size, chunk), *sample_shape): room for
        any one call's images. pop() is atomic, so two runner threads never share one."""
        try:
            return self._buffers.pop()
        except IndexError:
            rows = max(self.max_batch_size, self.chunk)
            return np.empty((rows, *self.model.contract.sample_shape), np.float32)


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


async def classify_batched(
    batcher: DynamicBatcher, workers: anyio.CapacityLimiter, inputs: Inputs, k: int | None, max_pixels: int
) -> Classified:
    """One request's inputs through ``batcher``: each image file prepared in its own worker
    thread (at most ``workers`` at once, shared with every other request, so one request's
    photos decode on every CPU), then the model's queue, then the ranking.

    A lone image that finds the model idle prepares and runs in a single worker call
    (``DynamicBatcher.running_alone``). ``Classified.seconds`` is the work done for the request:
    its decode + preprocess plus its batch's ONNX Runtime call (the queue wait is reported
    apart, ``BatchObserver.observe_batch``). Client errors (400/413/415) stay with their image
    and never reach the queue; a server fault (5xx) propagates.
    """
    model = batcher.model
    if isinstance(inputs, EncodedImages) and len(inputs) == 1 and batcher.idle():
        with batcher.running_alone() as alone:
            classified = await anyio.to_thread.run_sync(
                partial(classify, model, inputs, k, max_pixels=max_pixels), limiter=workers
            )
            alone.ran = classified.outcomes[0].error is None
        return classified
    if isinstance(inputs, Tensor):
        prepared, prepare_seconds = preprocess(model, inputs, max_pixels), 0.0
    else:
        with batcher.preparing():
            prepared, prepare_seconds = await _prepare_in_parallel(model, workers, inputs, max_pixels)
    probabilities, run_seconds = np.zeros((0, len(model.manifest.labels))), 0.0
    if prepared.images:
        batched = await batcher.infer(prepared.tensors)
        batched.record_stage()
        probabilities, run_seconds = batched.probabilities, batched.run_seconds
    return Classified(postprocess(model, prepared, probabilities, k), prepare_seconds + run_seconds)


async def _prepare_in_parallel(
    model: LoadedModel, workers: anyio.CapacityLimiter, inputs: EncodedImages, max_pixels: int
) -> tuple[Prepared, float]:
    """(``pipeline.preprocess``'s result, worker seconds summed over the files), each file
    prepared in its own worker thread."""
    results: list[np.ndarray | ServiceError | None] = [None] * len(inputs)
    seconds = 0.0

    def timed_prepare(data: bytes) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        return prepare(model, data, max_pixels), time.perf_counter() - start

    async def prepare_one(index: int, data: bytes) -> None:
        nonlocal seconds
        try:
            tensor, spent = await anyio.to_thread.run_sync(timed_prepare, data, limiter=workers)
        except ServiceError as exc:  # kept, not raised: a task group would wrap it in a group
            results[index] = exc
        else:
            results[index] = tensor
            seconds += spent

    async with anyio.create_task_group() as group:
        for index, data in enumerate(inputs.files):
            group.start_soon(prepare_one, index, data)
    fault = next((r for r in results if isinstance(r, ServiceError) and r.status_code >= 500), None)
    if fault is not None:
        raise fault
    tensors = [r for r in results if isinstance(r, np.ndarray)]
    rows: list[int | ServiceError] = []
    good = 0
    for result in results:
        if isinstance(result, ServiceError):
            rows.append(result)
        else:
            rows.append(good)
            good += 1
    return Prepared(tuple(tensors), rows, sample_shape=model.contract.sample_shape), seconds
