"""The engine's chain (preprocess -> predict -> postprocess) and the app's admission, in-process on
the real digit model."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from service.engine.admission import Admission
from service.engine.pipeline import EncodedImages, Tensor, classify, postprocess, predict, prepare, preprocess
from service.engine.registry import load_model
from service.errors import BadImage, BadRequest, Overloaded
from service.manifest import MANIFEST_FILENAME

from .support import BUNDLED_MODELS, encode, mnist_test_digits

DIGITS, LABELS = mnist_test_digits(8)


@pytest.fixture(scope="module")
def model():
    return load_model(BUNDLED_MODELS / "mnist" / MANIFEST_FILENAME, intra_op_threads=1)


def test_a_batch_is_ranked_like_each_image_alone(model) -> None:
    uploads = [encode(d) for d in DIGITS]
    tensors = [prepare(model, data, 10**6) for data in uploads]
    assert all(t.shape == (1, 28, 28, 1) and t.dtype == np.float32 for t in tensors)
    batched = classify(model, EncodedImages(uploads), 3, max_pixels=10**6)
    alone = [classify(model, EncodedImages([data]), 3, max_pixels=10**6).outcomes[0] for data in uploads]
    assert [o.ranking[0].label for o in batched.outcomes] == [str(label) for label in LABELS]
    assert batched.seconds > 0
    for together, single in zip(batched.outcomes, alone, strict=True):
        assert [r.class_index for r in together.ranking] == [r.class_index for r in single.ranking]
        np.testing.assert_allclose(
            [r.probability for r in together.ranking], [r.probability for r in single.ranking], atol=1e-6
        )


def test_a_tensor_input_answers_as_its_images_do(model) -> None:
    uploads = [encode(d) for d in DIGITS[:3]]
    from_files = classify(model, EncodedImages(uploads), None, max_pixels=10**6)
    tensor = np.concatenate([prepare(model, data, 10**6) for data in uploads])
    from_tensor = classify(model, Tensor(tensor), None, max_pixels=10**6)
    assert all(o.ranking is None for o in from_tensor.outcomes)  # k=None: probabilities only
    np.testing.assert_allclose(from_tensor.probabilities(), from_files.probabilities(), atol=1e-6)


def test_predict_returns_probabilities_per_row_and_postprocess_ranks_them(model) -> None:
    prepared = preprocess(model, EncodedImages([encode(d) for d in DIGITS[:3]]), 10**6)
    probs = predict(model, prepared.batch, chunk=2)  # two ONNX Runtime calls, one answer
    assert probs.shape == (3, 10) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    outcomes = postprocess(model, prepared, probs, 10)
    assert [len(o.ranking) for o in outcomes] == [10, 10, 10]
    assert all(o.ranking[i].probability >= o.ranking[i + 1].probability for o in outcomes for i in range(9))


def test_a_bad_file_keeps_its_error_and_the_others_their_answers(model) -> None:
    files = [encode(DIGITS[0]), b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, encode(DIGITS[1])]
    classified = classify(model, EncodedImages(files), 1, max_pixels=10**6)
    first, bad, last = classified.outcomes
    assert isinstance(bad.error, BadImage) and bad.ranking is None
    assert first.ranking[0].label == str(LABELS[0]) and last.ranking[0].label == str(LABELS[1])
    index, error = classified.first_error()
    assert index == 1 and error is bad.error
    with pytest.raises(ValueError, match="an image failed"):
        classified.probabilities()


def test_non_finite_scores_of_a_tensor_are_the_tensors_fault(model) -> None:
    extreme = np.full((1, 28, 28, 1), 1e38, dtype=np.float32)
    try:
        classified = classify(model, Tensor(extreme), None, max_pixels=10**6)
    except BadRequest as exc:  # a 400 that says why, never a 500 or NaN probabilities
        assert "not finite" in str(exc.detail)
    else:  # a graph may saturate to finite scores: then they must be a distribution
        np.testing.assert_allclose(classified.probabilities().sum(axis=1), 1.0, atol=1e-5)


def test_undecodable_bytes_are_a_bad_image(model) -> None:
    with pytest.raises(BadImage):
        prepare(model, b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, 10**6)


def test_admission_refuses_beyond_capacity_and_releases_on_error() -> None:
    # Each request is its own task (uvicorn, Mangum); a token is held per task.
    refusals: list[Overloaded] = []

    async def second_request(admission: Admission) -> None:
        try:
            async with admission.admit():
                pass
        except Overloaded as exc:
            refusals.append(exc)

    async def failing_request(admission: Admission) -> None:
        with pytest.raises(RuntimeError):
            async with admission.admit():
                raise RuntimeError("the route failed")

    async def scenario() -> float:
        admission = Admission(max_pending=1, workers=1, max_pixels=10**6)
        async with admission.admit(), anyio.create_task_group() as group:
            group.start_soon(second_request, admission)
        async with anyio.create_task_group() as group:
            group.start_soon(failing_request, admission)
        return admission.pending.borrowed_tokens

    assert anyio.run(scenario) == 0
    (refused,) = refusals
    assert refused.headers == {"Retry-After": "1"}
    assert refused.detail == "server busy: 1 predictions in progress; retry shortly"
