"""``POST /models/{name}/number`` over real HTTP: numbers written on paper photos.

The numbers are MNIST *test* digits (2,000 on) written in a row by
``benchmarks.digit_scenes.render_number_photo`` (2-5 digits; spacing touching, tight, normal or
wide; a wandering baseline; pens, paper tints, lighting, noise, JPEG), never used for tuning
(the segmentation was tuned on training digits). Measured on this set (docs/digits.md): exact
string 0.81 in all, 0.88 apart from touching digits, 0.66 for touching ones.
"""

from __future__ import annotations

import base64
import collections
import io
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.harness.digit_photos import render_photos
from tests.harness.digit_scenes import NumberPhoto, render_numbers

from .support import BUNDLED_MODELS, encode, mnist_test_digits, running_server
from .tiny_models import publish

FIRST_DIGIT, DIGITS, SEED = 2000, 600, 2026
# Exact-string accuracy of separated numbers (tight, normal, wide spacing), measured 0.877 of
# 114: the bound leaves ~5 numbers of slack for other CPUs' int8 kernels; a regression fails.
MIN_SEPARATED = 0.83
# Touching or overlapping digits, measured 0.66 of 53 (the issue asks 0.90 of every number:
# not met, see docs/digits.md).
MIN_TOUCHING = 0.55
# Per digit, over numbers whose length was read right; measured 0.984.
MIN_PER_DIGIT = 0.96


@pytest.fixture(scope="module")
def numbers() -> list[NumberPhoto]:
    digits, labels = mnist_test_digits(FIRST_DIGIT + DIGITS)
    return render_numbers(digits[FIRST_DIGIT:], labels[FIRST_DIGIT:], SEED)


def _read(http: httpx.Client, jpeg: bytes, name: str = "mnist") -> httpx.Response:
    return http.post(f"/models/{name}/number", files={"file": ("number.jpg", jpeg, "image/jpeg")})


def _iou(a, b) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def test_numbers_over_http(http, numbers):
    hits: dict[str, list[bool]] = collections.defaultdict(list)
    digit_hits, boxes_ok, boxes = 0, 0, 0
    digit_total = 0
    for photo in numbers:
        response = _read(http, photo.jpeg)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "mnist" and body["number"] == "".join(d["prediction"] for d in body["digits"])
        assert np.isclose(body["confidence"], np.prod([d["confidence"] for d in body["digits"]]))
        lefts = [d["box"][0] for d in body["digits"]]
        assert lefts == sorted(lefts), "digits are left to right"
        hits[photo.conditions["spacing"]].append(body["number"] == photo.number)
        if len(body["number"]) == len(photo.number):
            digit_total += len(photo.number)
            digit_hits += sum(a == b for a, b in zip(body["number"], photo.number, strict=True))
            for digit, truth in zip(body["digits"], photo.boxes, strict=True):
                boxes += 1
                boxes_ok += _iou(digit["box"], truth) >= 0.5
    separated = [h for kind in ("tight", "normal", "wide") for h in hits[kind]]
    summary = {kind: f"{np.mean(h):.3f} of {len(h)}" for kind, h in hits.items()}
    everything = [h for kind in hits.values() for h in kind]
    print(f"numbers: exact {np.mean(everything):.3f} of {len(everything)}, separated "
          f"{np.mean(separated):.3f}, {summary}, per digit {digit_hits / digit_total:.3f}")  # fmt: skip
    assert np.mean(separated) >= MIN_SEPARATED, summary
    assert np.mean(hits["touching"]) >= MIN_TOUCHING, summary
    assert digit_hits / digit_total >= MIN_PER_DIGIT, (digit_hits, digit_total)
    # Boxes are in the photo's pixels: they cover the digit's ink (IoU >= 0.5 with the truth).
    assert boxes_ok / boxes >= 0.95, (boxes_ok, boxes)


def test_upload_forms_give_the_same_answer(http, numbers):
    photo = numbers[0]
    multipart = _read(http, photo.jpeg).json()
    raw = http.post("/models/mnist/number", content=photo.jpeg, headers={"content-type": "image/jpeg"}).json()
    as_json = http.post(
        "/models/mnist/number", json={"image_base64": base64.b64encode(photo.jpeg).decode()}
    ).json()
    assert multipart == raw == as_json


def test_boxes_are_in_upright_pixels_of_an_exif_rotated_photo(http, numbers):
    """A phone stores a portrait photo sideways with an EXIF orientation: boxes are in the
    upright image's pixels, as the page draws them."""
    photo = numbers[1]
    upright = Image.open(io.BytesIO(photo.jpeg))
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode(sideways, "JPEG", quality=95, exif=exif.tobytes())
    straight = _read(http, photo.jpeg).json()
    turned = _read(http, rotated).json()
    assert turned["number"] == straight["number"]
    for a, b in zip(turned["digits"], straight["digits"], strict=True):
        assert _iou(a["box"], b["box"]) >= 0.8


def test_one_digit_is_a_number_of_one_digit(http):
    digits, labels = mnist_test_digits(40)
    photos = render_photos(digits[20:40], labels[20:40], 7)
    answers = [_read(http, p.jpeg).json()["number"] for p in photos]
    assert np.mean([a == str(p.label) for a, p in zip(answers, photos, strict=True)]) >= 0.85, answers


@pytest.mark.parametrize("value", [0, 235, 255])
def test_no_digit_is_a_422_saying_so(http, value):
    blank = encode(Image.new("RGB", (640, 480), (value, value, value)), "PNG")
    response = http.post("/models/mnist/number", files={"file": ("blank.png", blank, "image/png")})
    assert response.status_code == 422
    assert "no digit" in response.json()["detail"]


def test_bad_uploads_are_4xx(http):
    assert http.post("/models/mnist/number", content=b"").status_code == 400
    pdf = {"file": ("a.pdf", b"%PDF-1.4 ...", "application/pdf")}
    response = http.post("/models/mnist/number", files=pdf)
    assert response.status_code == 415 and "PDF" in response.json()["detail"]
    assert http.post("/models/nope/number", content=b"x").status_code == 404


def test_a_non_digit_model_is_a_404_saying_the_route_is_for_digit_models(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(BUNDLED_MODELS / "mnist", models / "mnist")
    publish(models / "tiny-rgb", _tiny_rgb_classifier(tmp_path / "tiny.onnx"), _tiny_rgb_manifest())
    with running_server(models) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        photo = encode(Image.new("RGB", (64, 64), (200, 30, 30)), "PNG")
        assert client.post("/models/tiny-rgb/predict", content=photo).status_code == 200
        response = client.post("/models/tiny-rgb/number", content=photo)
        assert response.status_code == 404
        assert "digit models" in response.json()["detail"]


def _tiny_rgb_classifier(path: Path) -> Path:
    """A real ONNX linear classifier over (N, 8, 8, 3) images: two classes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((8 * 8 * 3, 2)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
        ],
        "tiny_rgb",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [
            numpy_helper.from_array(np.array([-1, 8 * 8 * 3], dtype=np.int64), "flat_shape"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _tiny_rgb_manifest() -> dict:
    return {
        "schema_version": 1,
        "name": "tiny-rgb",
        "version": "0.0.1",
        "description": "hand-written RGB test model",
        "labels": ["a", "b"],
        "input": {"name": "image", "shape": [None, 8, 8, 3], "dtype": "float32", "layout": "NHWC"},
        "output": {"name": "scores", "kind": "logits"},
        "preprocessing": {"kind": "imagenet", "mode": "tf"},
        "weights": "random",
    }
