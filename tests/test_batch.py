"""``POST /models/{name}/predict/batch`` over real HTTP: per-file answers in upload order.

Real MNIST digits and real photos; a bad file in the middle fails only itself; the count and
byte limits answer 413 before anything is decoded; each good file's answer equals the
single-image route's.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .support import SHARED_DATA, encode, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(10)
PNGS = [encode(d) for d in DIGITS]
MAX_IMAGES = 12


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server(EDGE_MAX_BATCH_IMAGES=str(MAX_IMAGES), EDGE_MAX_BODY_BYTES=str(2 * 1024 * 1024)) as s:
        yield s.url


def post(server: str, files: list[tuple[str, bytes, str]], **params) -> httpx.Response:
    parts = [("files", (name, data, ctype)) for name, data, ctype in files]
    return httpx.post(f"{server}/models/mnist/predict/batch", files=parts, params=params, timeout=60)


def test_answers_in_upload_order_with_a_bad_photo_in_the_middle(server: str) -> None:
    photo = (SHARED_DATA / "cats_vs_dogs" / "cats" / "cat.4002.jpg").read_bytes()
    files = [(f"digit-{i}.png", png, "image/png") for i, png in enumerate(PNGS[:4])]
    files[2:2] = [
        ("scan.pdf", b"%PDF-1.7 not an image", "application/pdf"),
        ("half.png", PNGS[5][: len(PNGS[5]) // 2], "image/png"),
        ("empty.png", b"", "image/png"),
        ("cat.jpg", photo, "image/jpeg"),  # a real photo is a valid image: it gets a (meaningless) digit
    ]
    response = post(server, files, top_k=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "mnist" and body["model_version"] == "1.0.0"
    items = body["predictions"]
    assert [i["filename"] for i in items] == [name for name, _, _ in files]
    errors = {i["filename"]: i["error"] for i in items if "error" in i}
    assert errors["scan.pdf"]["status"] == 415 and "PDF" in errors["scan.pdf"]["detail"]
    assert errors["half.png"]["status"] == 400 and "truncated" in errors["half.png"]["detail"]
    assert errors["empty.png"]["status"] == 400
    assert set(errors) == {"scan.pdf", "half.png", "empty.png"}
    digits = [i for i in items if i["filename"].startswith("digit-")]
    assert [d["class_index"] for d in digits] == [int(x) for x in LABELS[:4]]
    assert all(len(d["top_k"]) == 2 for d in digits)


def test_each_answer_equals_the_single_image_route(server: str) -> None:
    response = post(server, [(f"{i}.png", png, "image/png") for i, png in enumerate(PNGS)], top_k=3)
    for png, item in zip(PNGS, response.json()["predictions"], strict=True):
        single = httpx.post(f"{server}/models/mnist/predict", params={"top_k": 3}, content=png).json()
        # A batched ORT call may differ from a single one in the last float bits, no more.
        assert [t["class_index"] for t in item["top_k"]] == [t["class_index"] for t in single["top_k"]]
        assert [t["probability"] for t in item["top_k"]] == pytest.approx(
            [t["probability"] for t in single["top_k"]], rel=1e-5, abs=1e-7
        )
        assert {k: v for k, v in item.items() if k not in ("filename", "top_k", "confidence")} == {
            k: v for k, v in single.items() if k not in ("top_k", "confidence")
        }


def test_too_many_files_is_413_before_decoding(server: str) -> None:
    # Garbage files: had they been decoded, the answer would list per-file 415s, not a 413.
    response = post(server, [(f"{i}.bin", b"not an image", "image/png") for i in range(MAX_IMAGES + 1)])
    assert response.status_code == 413
    assert f"limit is {MAX_IMAGES} (EDGE_MAX_BATCH_IMAGES)" in response.json()["detail"]
    assert post(server, [(f"{i}.png", PNGS[0], "image/png") for i in range(MAX_IMAGES)]).status_code == 200


def test_over_the_byte_limit_is_413(server: str) -> None:
    big = b"\x89PNG" + bytes(1024 * 1024)
    response = post(server, [("a.png", big, "image/png"), ("b.png", big, "image/png")])
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"content": PNGS[0], "headers": {"content-type": "image/png"}}, "multipart/form-data"),
        ({"files": [("file", ("a.png", PNGS[0], "image/png"))]}, "no field 'files' (fields sent: 'file')"),
    ],
)
def test_wrong_body_shape_is_422(server: str, kwargs: dict, words: str) -> None:
    response = httpx.post(f"{server}/models/mnist/predict/batch", **kwargs)
    assert response.status_code == 422 and words in response.json()["detail"]


def test_a_text_part_is_a_malformed_form_422(server: str) -> None:
    response = httpx.post(
        f"{server}/models/mnist/predict/batch",
        files=[("files", ("a.png", PNGS[0], "image/png"))],
        data={"files": "just text"},
    )
    assert response.status_code == 422 and "is a text value, not a file" in response.json()["detail"]


def test_unknown_model_is_404(server: str) -> None:
    response = httpx.post(
        f"{server}/models/nope/predict/batch", files=[("files", ("a.png", PNGS[0], "image/png"))]
    )
    assert response.status_code == 404
