"""The prediction steps other routes build on, in-process on the real digit model."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from service.errors import BadImage, Overloaded
from service.manifest import MANIFEST_FILENAME
from service.prediction import admit, classify_batch, predict_upload, prepare, rank, run
from service.registry import load_model

from .support import BUNDLED_MODELS, encode, mnist_test_digits

DIGITS, LABELS = mnist_test_digits(8)


@pytest.fixture(scope="module")
def model():
    return load_model(BUNDLED_MODELS / "mnist" / MANIFEST_FILENAME, intra_op_threads=1)


def test_a_batch_is_ranked_like_each_image_alone(model) -> None:
    uploads = [encode(d) for d in DIGITS]
    tensors = [prepare(model, data, 10**6) for data in uploads]
    assert all(t.shape == (1, 28, 28, 1) and t.dtype == np.float32 for t in tensors)
    batched = classify_batch(model, tensors, 3)
    alone = [predict_upload(model, data, 10**6, 3).ranked for data in uploads]
    assert [r[0].label for r in batched] == [str(label) for label in LABELS]
    for together, single in zip(batched, alone, strict=True):
        assert [r.class_index for r in together] == [r.class_index for r in single]
        np.testing.assert_allclose(
            [r.probability for r in together], [r.probability for r in single], atol=1e-6
        )


def test_run_returns_probabilities_per_row(model) -> None:
    batch = np.concatenate([prepare(model, encode(d), 10**6) for d in DIGITS[:3]])
    probs = run(model, batch)
    assert probs.shape == (3, 10) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    ranked = rank(model, probs, 10)
    assert [len(r) for r in ranked] == [10, 10, 10]
    assert all(r[i].probability >= r[i + 1].probability for r in ranked for i in range(9))


def test_an_empty_batch_is_refused(model) -> None:
    with pytest.raises(ValueError, match="at least one image"):
        classify_batch(model, [], 3)


def test_undecodable_bytes_are_a_bad_image(model) -> None:
    with pytest.raises(BadImage):
        prepare(model, b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, 10**6)


def test_admission_refuses_beyond_capacity_and_releases_on_error() -> None:
    # Each request is its own task (uvicorn, Mangum); a token is held per task.
    refusals: list[Overloaded] = []

    async def second_request(limiter: anyio.CapacityLimiter) -> None:
        try:
            async with admit(limiter):
                pass
        except Overloaded as exc:
            refusals.append(exc)

    async def failing_request(limiter: anyio.CapacityLimiter) -> None:
        with pytest.raises(RuntimeError):
            async with admit(limiter):
                raise RuntimeError("the route failed")

    async def scenario() -> float:
        limiter = anyio.CapacityLimiter(1)
        async with admit(limiter), anyio.create_task_group() as group:
            group.start_soon(second_request, limiter)
        async with anyio.create_task_group() as group:
            group.start_soon(failing_request, limiter)
        return limiter.borrowed_tokens

    assert anyio.run(scenario) == 0
    (refused,) = refusals
    assert refused.headers == {"Retry-After": "1"}
    assert refused.detail == "server busy: 1 predictions in progress; retry shortly"
