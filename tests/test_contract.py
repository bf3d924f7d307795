"""The model contract is checked once, at load: broken manifests beside good models.

Each broken model sits in one model directory with the intact digit model and a hand-built
linear ``logits`` model; a real uvicorn server must come up, report ``degraded`` with every
broken model unavailable for a reason naming the mismatched field and both values, and keep
serving the good ones. The ``logits`` model checks the softmax the service applies against
numpy on the same preprocessed input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.images.preprocessing import preprocess
from service.manifest import Manifest

from . import support
from .support import encode, mnist_test_digits, running_server
from .tiny_models import linear_classifier, linear_manifest, mnist_copy, publish

pytest.importorskip("onnx")  # the `convert` extra

DIGITS, LABELS = mnist_test_digits(3)
CANVAS = 8
LOGIT_LABELS = ["low", "mid", "high"]
RNG = np.random.default_rng(20261121)
WEIGHTS = RNG.normal(0.0, 1.0, (CANVAS * CANVAS, 3)).astype(np.float32)
BIAS = np.array([1.0, 2.0, 3.0], dtype=np.float32)

# model name -> a fragment of the reason /health must give (field and both values)
BROKEN = {
    "bad-shape": "input.shape [None, 32, 32, 1] but the graph expects [N, 28, 28, 1]",
    "bad-rank": "input.shape [None, 8, 8, 1] but the graph expects [N, 64] (rank 4 vs 2)",
    "bad-dtype": "input.dtype float32 but the graph expects tensor(double)",
    "bad-canvas": "preprocessing makes 32x32x1 (canvas 32) but input.shape [None, 28, 28, 1]",
    "bad-box": "preprocessing.box 40 is larger than preprocessing.canvas 28",
    "bad-layout": "but input.shape [None, 28, 28, 1] (NCHW: H, W, C = (28, 1, 28))",
    "bad-channels": "preprocessing makes HxWx3 (imagenet, RGB) but input.shape [None, 28, 28, 1]",
    "bad-labels": "output 'probabilities' has 10 values per image ([N, 10]) but 11 labels need 11",
    "bad-sigmoid": "has 10 values per image ([N, 10]) but 2 labels need 1 (sigmoid: one unit)",
    "bad-output-name": "output.name 'probs' but the graph's outputs are ['probabilities']",
    "bad-logit-count": "output 'scores' has 3 values per image ([N, 3]) but 4 labels need 4 (logits: one",
}


def _linear(tmp: Path, name: str, **kwargs: object) -> Path:
    onnx_path = tmp / f"{name}.onnx"
    linear_classifier(onnx_path, WEIGHTS, BIAS, canvas=CANVAS, **kwargs)  # type: ignore[arg-type]
    return onnx_path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build = tmp_path_factory.mktemp("onnx")
    mnist = Manifest.model_validate_json((support.BUNDLED_MODELS / "mnist" / "manifest.json").read_text())
    digit = mnist.preprocessing.model_dump()
    shape = mnist.input.model_dump()
    mnist_copy(root / "mnist", "mnist")
    publish(root / "logits", _linear(build, "logits"), linear_manifest("logits", LOGIT_LABELS, CANVAS))
    mnist_copy(
        root / "bad-shape",
        "bad-shape",
        input={**shape, "shape": [None, 32, 32, 1]},
        preprocessing={**digit, "canvas": 32},
    )
    publish(
        root / "bad-rank",
        _linear(build, "rank", flat_input=True),
        linear_manifest("bad-rank", LOGIT_LABELS, CANVAS),
    )
    publish(
        root / "bad-dtype",
        _linear(build, "dtype", input_type="DOUBLE"),
        linear_manifest("bad-dtype", LOGIT_LABELS, CANVAS),
    )
    mnist_copy(root / "bad-canvas", "bad-canvas", preprocessing={**digit, "canvas": 32})
    mnist_copy(root / "bad-box", "bad-box", preprocessing={**digit, "box": 40})
    mnist_copy(root / "bad-layout", "bad-layout", input={**shape, "layout": "NCHW"})
    mnist_copy(root / "bad-channels", "bad-channels", preprocessing={"kind": "imagenet", "mode": "tf"})
    mnist_copy(root / "bad-labels", "bad-labels", labels=[str(d) for d in range(11)])
    mnist_copy(
        root / "bad-sigmoid",
        "bad-sigmoid",
        labels=["no", "yes"],
        output={"name": "probabilities", "kind": "sigmoid"},
    )
    mnist_copy(root / "bad-output-name", "bad-output-name", output={"name": "probs", "kind": "softmax"})
    publish(
        root / "bad-logit-count",
        _linear(build, "count"),
        linear_manifest("bad-logit-count", [*LOGIT_LABELS, "extra"], CANVAS),
    )
    return root


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[support.RunningServer]:
    with running_server(model_dir) as running:
        yield running


def test_health_is_degraded_with_a_reason_per_broken_model(server: support.RunningServer) -> None:
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "degraded"
    assert health["models"] == ["logits", "mnist"]
    reasons = {u["name"]: u["reason"] for u in health["unavailable"]}
    assert set(reasons) == set(BROKEN)
    for name, fragment in BROKEN.items():
        assert fragment in reasons[name], (name, reasons[name])


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_model_is_refused_at_once_with_its_reason(server: support.RunningServer, name: str) -> None:
    response = httpx.post(f"{server.url}/models/{name}/predict", content=encode(DIGITS[0]))
    assert response.status_code == 503
    assert response.json()["detail"] == f"model {name!r} is not available: " + _reason(server, name)


def _reason(server: support.RunningServer, name: str) -> str:
    health = httpx.get(f"{server.url}/health").json()
    return next(u["reason"] for u in health["unavailable"] if u["name"] == name)


def test_the_good_digit_model_keeps_serving(server: support.RunningServer) -> None:
    for digit, label in zip(DIGITS, LABELS, strict=True):
        response = httpx.post(f"{server.url}/predict", content=encode(digit))
        assert response.status_code == 200
        assert response.json()["prediction"] == str(label)


def test_logits_of_a_blank_image_are_the_bias_through_a_softmax(server: support.RunningServer) -> None:
    # A blank page normalises to an all-zeros canvas, so the scores are exactly the bias.
    blank = Image.new("L", (40, 40), 255)
    response = httpx.post(f"{server.url}/models/logits/predict", content=encode(blank))
    assert response.status_code == 200
    body = response.json()
    exp = [math.exp(b - 3.0) for b in BIAS]
    expected = [e / sum(exp) for e in exp]  # softmax(1, 2, 3) = 0.0900, 0.2447, 0.6652
    assert [c["label"] for c in body["top_k"]] == ["high", "mid", "low"]
    got = {c["label"]: c["probability"] for c in body["top_k"]}
    for label, probability in zip(LOGIT_LABELS, expected, strict=True):
        assert got[label] == pytest.approx(probability, abs=1e-6)
    assert body["confidence"] == pytest.approx(0.66524096, abs=1e-6)
    assert body["for_real_predictions"] is False


def test_logits_of_a_digit_match_numpy(server: support.RunningServer, model_dir: Path) -> None:
    manifest = Manifest.model_validate_json((model_dir / "logits" / "manifest.json").read_text())
    for digit in DIGITS:
        scores = (
            preprocess(Image.fromarray(digit), manifest).reshape(1, -1).astype(np.float64) @ WEIGHTS + BIAS
        )
        expected = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        body = httpx.post(f"{server.url}/models/logits/predict", content=encode(digit)).json()
        got = [0.0] * 3
        for entry in body["top_k"]:
            got[entry["class_index"]] = entry["probability"]
        np.testing.assert_allclose(got, expected[0], atol=1e-5)
        assert body["class_index"] == int(np.argmax(expected))
