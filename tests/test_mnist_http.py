"""The committed digit model answers real MNIST test digits over real HTTP (uvicorn)."""

from __future__ import annotations

import numpy as np
import pytest

from .support import encode, mnist_test_digits
from .uploads import as_real_upload

COUNT = 1000


@pytest.fixture(scope="module")
def digits():
    return mnist_test_digits(COUNT)


def _accuracy(http, images: list[bytes], labels: np.ndarray, path: str, multipart: bool) -> float:
    correct = 0
    for body, label in zip(images, labels, strict=True):
        if multipart:
            response = http.post(path, files={"file": ("digit", body, "application/octet-stream")})
        else:
            response = http.post(path, content=body, headers={"content-type": "application/octet-stream"})
        assert response.status_code == 200, response.text
        correct += response.json()["class_index"] == int(label)
    return correct / len(labels)


@pytest.mark.parametrize(
    ("fmt", "save_args", "path", "multipart"),
    [
        ("PNG", {}, "/predict", True),
        ("JPEG", {"quality": 90}, "/models/mnist/predict", False),
    ],
)
def test_mnist_test_digits_over_http(http, digits, fmt, save_args, path, multipart):
    images, labels = digits
    bodies = [encode(image, fmt, **save_args) for image in images]
    assert _accuracy(http, bodies, labels, path, multipart) >= 0.99


def test_digits_as_real_uploads(http, digits):
    """Dark ink on white paper, 3-8x larger, off-centre, JPEG-compressed, RGB."""
    images, labels = digits
    rng = np.random.default_rng(7)
    bodies = [encode(as_real_upload(image, rng), "JPEG", quality=85) for image in images]
    assert _accuracy(http, bodies, labels, "/predict", True) >= 0.985


def test_prediction_response_shape(http, digits):
    images, labels = digits
    response = http.post("/predict?top_k=5", files={"file": ("seven.png", encode(images[0]), "image/png")})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "mnist"
    assert body["prediction"] == str(labels[0]) and body["class_index"] == int(labels[0])
    assert len(body["top_k"]) == 5
    assert body["top_k"][0] == {
        "label": body["prediction"],
        "class_index": body["class_index"],
        "probability": body["confidence"],
    }
    probabilities = [entry["probability"] for entry in body["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[-1] >= 0.0 and sum(probabilities) <= 1.0 + 1e-6
    assert body["confidence"] > 0.9
    assert body["for_real_predictions"] is True


def test_default_top_k_is_three_and_all_ten_available(http, digits):
    images, _ = digits
    body = encode(images[1])
    assert len(http.post("/predict", content=body).json()["top_k"]) == 3
    ranked = http.post("/predict?top_k=10", content=body).json()["top_k"]
    assert sorted(entry["class_index"] for entry in ranked) == list(range(10))
    assert abs(sum(entry["probability"] for entry in ranked) - 1.0) < 1e-3
