"""KServe V1 / TF-Serving JSON over real HTTP: ``image_bytes.b64`` instances, answers equal to
the native route's for the same files, ``{"error": ...}`` bodies."""

from __future__ import annotations

import base64

import httpx
import pytest

from .support import encode, mnist_test_digits

DIGITS, LABELS = mnist_test_digits(6)
PNGS = [encode(d) for d in DIGITS]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_model_status(http: httpx.Client) -> None:
    assert http.get("/v1/models/mnist").json() == {"name": "mnist", "ready": True}
    missing = http.get("/v1/models/nope")
    assert missing.status_code == 404 and "no model named 'nope'" in missing.json()["error"]


def test_instances_are_classified_like_the_native_route(http: httpx.Client) -> None:
    body = {"instances": [{"image_bytes": {"b64": b64(p)}, "key": str(i)} for i, p in enumerate(PNGS)]}
    response = http.post("/v1/models/mnist:predict", json=body, params={"top_k": 2})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["class_index"] for p in predictions] == [int(x) for x in LABELS]
    for png, prediction in zip(PNGS, predictions, strict=True):
        native = http.post("/models/mnist/predict", params={"top_k": 2}, content=png).json()
        assert prediction["label"] == native["prediction"]
        assert [t["class_index"] for t in prediction["top_k"]] == [t["class_index"] for t in native["top_k"]]
        assert prediction["probability"] == pytest.approx(native["confidence"], rel=1e-5, abs=1e-7)


def test_parameters_top_k_and_plain_b64_instances(http: httpx.Client) -> None:
    body = {"instances": [{"b64": b64(PNGS[0])}], "parameters": {"top_k": 4}}
    (prediction,) = http.post("/v1/models/mnist:predict", json=body).json()["predictions"]
    assert len(prediction["top_k"]) == 4


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"not json", 400, "not valid JSON"),
        (b'{"instances": []}', 400, "non-empty"),
        (b'{"instances": [{"image_bytes": {"b64": "@@@"}}]}', 400, "not valid base64"),
        (
            b'{"instances": [{"image_bytes": {"b64": "aGVsbG8="}}]}',
            415,
            "instance 0: body is not a recognised image",
        ),
        (b'{"instances": [{"b64": "aGVsbG8="}], "parameters": {"top_k": 5000}}', 422, "top_k"),
    ],
)
def test_errors_are_error_objects(http: httpx.Client, body: bytes, status: int, words: str) -> None:
    response = http.post(
        "/v1/models/mnist:predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert words in response.json()["error"]
