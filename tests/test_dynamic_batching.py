"""Dynamic batching across requests (``service.engine.dynamic_batching``).

The batcher on the real digit model's ONNX Runtime session: a lone request runs at once, the
requests that queue while a batch runs go together (up to ``max_batch_size``), each gets the
answer it gets alone, and a batch ONNX Runtime rejects is re-run so that only the faulty request
fails. Then through a real uvicorn server with concurrent real clients: answers equal the
sequential ones, bad images fail alone, admission refuses with 503 once queued work fills it,
and the queue metrics are exported. On Lambda the batcher is off and never imported.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.engine.cpus import plan_threads
from service.engine.dynamic_batching import DynamicBatcher, classify_batched
from service.engine.inference import run
from service.engine.pipeline import EncodedImages, prepare
from service.engine.registry import LoadedModel, load_model

from .support import BUNDLED_MODELS, SHARED_DATA, encode, lambda_child, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(12)
PNGS = [encode(d) for d in DIGITS]
MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(BUNDLED_MODELS / "mnist" / "manifest.json", intra_op_threads=1)


class Recorder:
    """A ``BatchObserver`` that keeps what the batcher reported."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.waits: list[float] = []
        self.depths: list[int] = []

    def observe_batch(self, model: str, size: int, queue_seconds: list[float]) -> None:
        self.sizes.append(size)
        self.waits.extend(queue_seconds)

    def set_queue_depth(self, model: str, images: int) -> None:
        self.depths.append(images)


class Gate:
    """The real ``inference.run``, held until ``open()``: requests arriving meanwhile queue
    exactly as they do behind a slow batch."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.calls: list[int] = []

    def __call__(self, model: LoadedModel, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        self.event.wait(timeout=30)
        return run(model, batch)


def tensors(model: LoadedModel, count: int) -> list[np.ndarray]:
    return [prepare(model, png, MAX_PIXELS) for png in PNGS[:count]]


async def submit_while_held(batcher: DynamicBatcher, gate: Gate, items: list[np.ndarray]) -> list:
    """Submit ``items[0]``, then the rest while its run is held, then release; every outcome."""
    first = asyncio.ensure_future(batcher.infer(items[0]))
    await asyncio.sleep(0.05)  # the first batch is running (held) now
    rest = [asyncio.ensure_future(batcher.infer(t)) for t in items[1:]]
    await asyncio.sleep(0.05)
    assert batcher.queued_images == sum(len(t) for t in items[1:])
    gate.event.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_a_lone_request_runs_at_once_and_queued_ones_run_as_one_batch(model: LoadedModel) -> None:
    gate, recorder = Gate(), Recorder()
    batcher = DynamicBatcher(model, max_batch_size=8, runner=gate, observer=recorder)
    items = tensors(model, 6)
    outcomes = asyncio.run(submit_while_held(batcher, gate, items))
    # Guards: no waiting for company when idle (1), then everything queued in one call (5).
    assert gate.calls == [1, 5]
    assert recorder.sizes == [1, 5]
    assert recorder.depths[-1] == 0
    for tensor, outcome in zip(items, outcomes, strict=True):
        # Batched rows equal the request run alone (same kernels; batch size changes the
        # summation order only, hence a tolerance rather than equality).
        np.testing.assert_allclose(outcome.probabilities, run(model, tensor), rtol=0, atol=1e-6)


def test_batches_stop_at_max_batch_size(model: LoadedModel) -> None:
    gate = Gate()
    batcher = DynamicBatcher(model, max_batch_size=3, runner=gate)
    outcomes = asyncio.run(submit_while_held(batcher, gate, tensors(model, 8)))
    assert gate.calls == [1, 3, 3, 1]
    assert all(len(o.probabilities) == 1 for o in outcomes)


@pytest.mark.parametrize("as_parts", [False, True], ids=["one tensor", "one tensor per file"])
def test_a_request_larger_than_the_batch_runs_alone_in_chunks(model: LoadedModel, as_parts: bool) -> None:
    # One tensor is what a V2 request brings; one per file is what the batch route brings,
    # copied chunk by chunk into the runner's reused buffer.
    gate = Gate()
    batcher = DynamicBatcher(model, max_batch_size=4, chunk=4, runner=gate)
    files = tensors(model, 10)
    big = np.concatenate(files)

    async def submit() -> list:
        first = asyncio.ensure_future(batcher.infer(files[0]))
        await asyncio.sleep(0.05)
        rest = asyncio.ensure_future(batcher.infer(files if as_parts else big))
        await asyncio.sleep(0.05)
        gate.event.set()
        return await asyncio.gather(first, rest)

    outcomes = asyncio.run(submit())
    assert gate.calls == [1, 4, 4, 2]
    np.testing.assert_allclose(outcomes[1].probabilities, run(model, big), rtol=0, atol=1e-6)


def test_a_batch_onnx_runtime_rejects_fails_only_the_faulty_request(model: LoadedModel) -> None:
    gate = Gate()
    batcher = DynamicBatcher(model, max_batch_size=8, runner=gate)
    good = tensors(model, 4)
    wrong_shape = np.zeros((1, 27, 28, 1), dtype=np.float32)  # not the graph's input shape
    items = [good[0], good[1], wrong_shape, good[2], good[3]]
    outcomes = asyncio.run(submit_while_held(batcher, gate, items))
    assert isinstance(outcomes[2], Exception)
    for tensor, outcome in zip(good, [outcomes[i] for i in (0, 1, 3, 4)], strict=True):
        np.testing.assert_allclose(outcome.probabilities, run(model, tensor), rtol=0, atol=1e-6)


def test_a_cancelled_request_leaves_the_queue(model: LoadedModel) -> None:
    gate = Gate()
    batcher = DynamicBatcher(model, max_batch_size=8, runner=gate)

    async def scenario() -> list[int]:
        items = tensors(model, 3)
        first = asyncio.ensure_future(batcher.infer(items[0]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.infer(items[1]))
        kept = asyncio.ensure_future(batcher.infer(items[2]))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client went away while queued
        gate.event.set()
        await asyncio.gather(first, kept)
        return gate.calls

    assert asyncio.run(scenario()) == [1, 1]


def test_classify_batched_keeps_a_bad_image_out_of_the_queue(model: LoadedModel) -> None:
    import anyio

    from service.errors import UnsupportedImage

    recorder = Recorder()
    batcher = DynamicBatcher(model, max_batch_size=8, observer=recorder)

    async def scenario() -> None:
        workers = anyio.CapacityLimiter(2)
        pdf = EncodedImages([b"%PDF-1.7 not an image"])
        refused = await classify_batched(batcher, workers, pdf, 3, MAX_PIXELS)
        assert isinstance(refused.outcomes[0].error, UnsupportedImage)
        assert recorder.sizes == []  # refused before ONNX Runtime: no batch
        classified = await classify_batched(batcher, workers, EncodedImages([PNGS[0]]), 3, MAX_PIXELS)
        assert classified.outcomes[0].ranking[0].label == str(LABELS[0])
        # The model was idle: prepared and run in one worker call, a batch of one, no wait.
        assert recorder.sizes == [1] and recorder.waits == [0.0]

    asyncio.run(scenario())
    assert batcher.queued_images == 0 and batcher.running == 0 and batcher.idle()


def test_the_worker_plan_keeps_one_run_on_every_cpu() -> None:
    for budget in (1, 2, 4):
        plan = plan_threads(budget, batching=True)
        # One batch at a time with every CPU: runs never compete for CPUs, and a lone request
        # gets the intra-op threads of the unbatched plan (its latency).
        assert plan.runners * plan.intra_op_threads == budget
        assert plan.intra_op_threads == plan_threads(budget).intra_op_threads
        assert plan.workers == budget  # one decode per CPU while a batch runs


# --- through a real server ---------------------------------------------------------------


def _post(url: str, data: bytes, ctype: str = "image/png") -> httpx.Response:
    return httpx.post(f"{url}/models/mnist/predict", files={"file": ("x", data, ctype)}, timeout=60)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_concurrent_clients_get_their_own_answers_and_errors_with_queue_metrics() -> None:
    photo = (SHARED_DATA / "cats_vs_dogs" / "cats" / "cat.4002.jpg").read_bytes()
    uploads = [(png, "image/png") for png in PNGS] + [
        (b"%PDF-1.7 not an image", "application/pdf"),
        (PNGS[3][: len(PNGS[3]) // 2], "image/png"),
        (photo, "image/jpeg"),
    ]
    with running_server() as server:
        sequential = [_post(server.url, data, ctype) for data, ctype in uploads]
        with ThreadPoolExecutor(16) as pool:  # 16 real clients, each request on its own connection
            rounds = [pool.map(lambda u: _post(server.url, *u), uploads) for _ in range(8)]
            concurrent = [list(r) for r in rounds]
        metrics = _samples(httpx.get(f"{server.url}/metrics").text)
    assert [r.status_code for r in sequential] == [200] * len(PNGS) + [415, 400, 200]
    for answers in concurrent:
        assert [r.status_code for r in answers] == [r.status_code for r in sequential]
        for alone, loaded in zip(sequential, answers, strict=True):
            if alone.status_code == 200:
                for a, b in zip(alone.json()["top_k"], loaded.json()["top_k"], strict=True):
                    assert a["label"] == b["label"] and abs(a["probability"] - b["probability"]) <= 1e-6
            else:
                assert loaded.json()["detail"] == alone.json()["detail"]
    good = (len(PNGS) + 1) * 9  # requests that reached the queue
    assert metrics[("edge_model_queue_duration_seconds_count", (("model", "mnist"),))] == good
    assert metrics[("edge_model_batch_size_sum", (("model", "mnist"),))] == good
    assert metrics[("edge_model_queue_depth", (("model", "mnist"),))] == 0


def test_admission_counts_queued_requests_and_refuses_with_503() -> None:
    big = encode(np.tile(DIGITS[0], (40, 40)))  # 1120x1120: the digit path's slowest prepare
    with running_server(EDGE_MAX_PENDING_PREDICTIONS="2") as server:
        barrier = threading.Barrier(12)

        def client(_: int) -> httpx.Response:
            barrier.wait()
            return _post(server.url, big)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(client, range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses and 200 in statuses
    refused = next(r for r in answers if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "busy" in refused.json()["detail"]


def test_batch_route_requests_share_the_queue_with_single_ones() -> None:
    with running_server() as server:
        alone = [_post(server.url, png).json()["top_k"] for png in PNGS[:4]]

        def batch(_: int) -> httpx.Response:
            parts = [("files", (f"d{i}.png", png, "image/png")) for i, png in enumerate(PNGS[:4])]
            return httpx.post(f"{server.url}/models/mnist/predict/batch", files=parts, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(batch, range(16)))
    for response in answers:
        assert response.status_code == 200
        for expected, item in zip(alone, response.json()["predictions"], strict=True):
            assert item["top_k"][0]["label"] == expected[0]["label"]
            assert abs(item["top_k"][0]["probability"] - expected[0]["probability"]) <= 1e-6


LAMBDA_CHILD = r"""
import json, sys
from tests.harness.lambda_events import LambdaContext, http_api_v2_event

import service.lambda_handler as lh

body = open(sys.argv[1], "rb").read()
response = lh.handler(http_api_v2_event("/predict", body, "image/png"), LambdaContext())
print(json.dumps({
    "batchers": lh.app.state.admission.batchers is not None,
    "imported": "service.engine.dynamic_batching" in sys.modules,
    "status": response["statusCode"],
    "prediction": json.loads(response["body"])["prediction"],
}))
"""


def test_lambda_has_no_batcher_and_never_imports_it(tmp_path: Path) -> None:
    upload = tmp_path / "digit.png"
    upload.write_bytes(PNGS[0])
    out = lambda_child(LAMBDA_CHILD, str(upload), model_dir=BUNDLED_MODELS)
    assert out == {"batchers": False, "imported": False, "status": 200, "prediction": str(LABELS[0])}


def test_batching_is_on_off_lambda_and_off_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert Settings().dynamic_batching is True
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "edge-infer")
    assert Settings().dynamic_batching is False
    assert json.loads(Settings(dynamic_batching=True).model_dump_json())["dynamic_batching"] is True
