"""The bad-input corpus, sent over real HTTP to a real uvicorn server.

Every entry either gets a precise 4xx ``{"detail": ...}`` naming what was wrong, or (where the
input is a valid image in an awkward form) the same prediction as the plain PNG of the same
MNIST test digit. No entry may get a 500, a stack trace or a server file path.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image

from .support import encode, heic_bytes, mnist_test_digits

DIGITS, LABELS = mnist_test_digits(40)
LIMIT_BYTES = 6 * 1024 * 1024  # service default (config.Settings.max_body_bytes)


@dataclass(frozen=True)
class Expect:
    """Expected answer: a status and a detail fragment, or a label for a valid image."""

    status: int
    detail: str | None = None
    label: int | None = None


@dataclass(frozen=True)
class Case:
    name: str
    expect: Expect
    method: str = "POST"
    path: str = "/predict"
    params: dict = field(default_factory=dict)
    content: bytes | None = None
    files: list | None = None
    data: dict | None = None
    headers: dict = field(default_factory=dict)


def _digit(index: int, scale: int = 4) -> Image.Image:
    """MNIST test digit ``index`` (light ink on black), upscaled ``scale`` times, mode L."""
    image = Image.fromarray(DIGITS[index])
    return image.resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)


def _on_paper(index: int, size: tuple[int, int], scale: int = 10) -> Image.Image:
    """Dark ink on white paper, digit centred on a canvas of ``size`` (width, height)."""
    ink = Image.fromarray(255 - DIGITS[index]).resize((28 * scale, 28 * scale))
    canvas = Image.new("L", size, 255)
    canvas.paste(ink, ((size[0] - ink.width) // 2, (size[1] - ink.height) // 2))
    return canvas


def _multipart(data: bytes, name: str = "file", filename: str = "upload.png", ctype: str = "image/png"):
    return [(name, (filename, data, ctype))]


def _animated(fmt: str, first: int, second: int) -> bytes:
    frames = [_digit(first).convert("RGB"), _digit(second).convert("RGB")]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    extra = {"duration": 100, "loop": 0} if fmt in ("GIF", "WEBP") else {}
    if fmt == "WEBP":
        extra["lossless"] = True
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **extra)


def _exif_rotated(index: int, orientation: int, fmt: str = "PNG") -> bytes:
    """Pixels stored rotated, with the EXIF orientation that turns them upright again."""
    stored = {
        3: Image.Transpose.ROTATE_180,
        6: Image.Transpose.ROTATE_90,  # display rotates 90 deg clockwise
        8: Image.Transpose.ROTATE_270,  # display rotates 90 deg counter-clockwise
    }[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = _digit(index).transpose(stored)
    return encode(image, fmt, exif=exif.tobytes(), **({"quality": 95} if fmt == "JPEG" else {}))


def _png_header(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A PNG with a valid IHDR for ``width`` x ``height`` and no pixel data at all."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _corrupt(data: bytes, start: int, length: int) -> bytes:
    damaged = bytearray(data)
    damaged[start : start + length] = b"\xff" * length
    return bytes(damaged)


def _transparent_ink(index: int, ink: int, mode: str) -> bytes:
    """Ink of grey level ``ink`` on a fully transparent canvas (alpha = the digit)."""
    alpha = np.asarray(_digit(index))
    colour = np.full_like(alpha, ink)
    channels = [colour, colour, colour] if mode == "RGBA" else [colour]
    pixels = np.dstack([*channels, alpha])
    return encode(Image.fromarray(pixels, mode))


def _palette_with_transparency(index: int) -> bytes:
    image = _on_paper(index, (140, 140), scale=4).convert("P")
    return encode(image, "PNG", transparency=255)


def _good_pair() -> tuple[int, int]:
    """Two test-set indices with different labels (the first digits are 7, 2, 1, 0, 4...)."""
    first = 0
    second = next(i for i in range(1, len(LABELS)) if LABELS[i] != LABELS[first])
    return first, second


A, B = _good_pair()
LA, LB = int(LABELS[A]), int(LABELS[B])
PNG_A = encode(_digit(A))
JPEG_A = encode(_digit(A).convert("RGB"), "JPEG", quality=92)
GIF_A = encode(_digit(A).convert("P"), "GIF")
WEBP_A = encode(_digit(A).convert("RGB"), "WEBP", quality=90)
BMP_A = encode(_digit(A), "BMP")
TIFF_A = encode(_digit(A), "TIFF")
AVIF_A = encode(_digit(A).convert("RGB"), "AVIF", quality=90)


HEIC_A = heic_bytes(_digit(A).convert("RGB"))
ALLOWED = "send one of: JPEG, PNG, GIF, WEBP, BMP, TIFF, HEIF, AVIF"


def corpus() -> list[Case]:
    ok = Expect(200, label=LA)
    cases = [
        # --- empty and missing bodies, wrong field names, multipart abuse
        Case(
            "empty raw body",
            Expect(400, "empty body"),
            content=b"",
            headers={"content-type": "application/octet-stream"},
        ),
        Case("missing body, no content type", Expect(400, "empty body")),
        Case("empty multipart file", Expect(400, "empty body"), files=_multipart(b"")),
        Case(
            "wrong field name 'image'",
            Expect(422, "multipart body has no field 'file' (fields sent: 'image')"),
            files=_multipart(PNG_A, name="image"),
        ),
        Case(
            "field 'file' sent as text",
            Expect(422, "must be a file, not a text value"),
            data={"file": "digit.png"},
            files=_multipart(PNG_A, name="other"),
        ),
        Case(
            "too many files",
            Expect(400, "Too many files. Maximum number of files is 1"),
            files=_multipart(PNG_A) + _multipart(PNG_A, filename="second.png"),
        ),
        Case(
            "too many fields",
            Expect(400, "Too many fields"),
            data={f"field{i}": "x" for i in range(12)},
            files=_multipart(PNG_A),
        ),
        Case(
            "multipart without boundary",
            Expect(400),
            content=b"--x\r\n\r\n",
            headers={"content-type": "multipart/form-data"},
        ),
        Case(
            "image_url body while URLs are disabled",
            Expect(400, "image URLs are disabled on this server; to enable them set EDGE_IMAGE_URLS=true"),
            content=b'{"image_url": "http://169.254.169.254/latest/meta-data/"}',
            headers={"content-type": "application/json"},
        ),
        Case(
            "JSON body sent as octet-stream is not an image",
            Expect(415, ALLOWED),
            content=b'{"image_base64": "AAAA"}',
            headers={"content-type": "application/octet-stream"},
        ),
        # --- non-images sent as images
        Case(
            "text as image/png",
            Expect(415, "body is not a recognised image"),
            files=_multipart(b"hello, I am not a picture"),
        ),
        Case(
            "PDF", Expect(415, "PDF is not a supported image format"), content=b"%PDF-1.7\n%\xe2\xe3\n1 0 obj"
        ),
        Case(
            "SVG",
            Expect(415, "SVG is not a supported image format"),
            content=b"<svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>",
        ),
        Case(
            "HEIC box header only",
            Expect(400, "HEIF data is corrupt"),
            content=b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
        ),
        Case("HEIC truncated at half", Expect(400, "HEIF"), content=HEIC_A[: len(HEIC_A) // 2]),
        Case("AVIF truncated at half", Expect(400, "AVIF"), content=AVIF_A[: len(AVIF_A) // 2]),
        Case(
            "AVIF pixel data zeroed",
            Expect(400, "AVIF"),
            content=AVIF_A[: AVIF_A.index(b"mdat") + 4] + bytes(len(AVIF_A) - AVIF_A.index(b"mdat") - 4),
        ),
        Case("ICO", Expect(415, "ICO is not a supported image format"), content=encode(_digit(A), "ICO")),
        Case(
            "random bytes",
            Expect(415, "body is not a recognised image"),
            content=np.random.default_rng(0).bytes(4096),
        ),
        Case(
            "ELF binary",
            Expect(415, "not a recognised image"),
            content=b"\x7fELF\x02\x01\x01" + b"\x00" * 100,
        ),
        # --- truncated or corrupt files
        Case(
            "JPEG truncated at half",
            Expect(400, "JPEG data is truncated"),
            content=JPEG_A[: len(JPEG_A) // 2],
        ),
        Case("JPEG header only", Expect(400, "JPEG"), content=JPEG_A[:20]),
        Case("JPEG corrupt header", Expect(400, "corrupt JPEG"), content=_corrupt(JPEG_A, 12, 12)),
        Case("PNG truncated at half", Expect(400, "PNG data is truncated"), content=PNG_A[: len(PNG_A) // 2]),
        Case("PNG signature only", Expect(400, "PNG data is corrupt"), content=PNG_A[:8]),
        Case(
            "PNG corrupt pixel data",
            Expect(400, "corrupt PNG data"),
            content=_corrupt(PNG_A, len(PNG_A) // 3, 40),
        ),
        Case("PNG IHDR without pixel data", Expect(400, "corrupt PNG data"), content=_png_header(10, 10)),
        Case("PNG of width 0", Expect(400, "PNG data is corrupt"), content=_png_header(0, 5)),
        Case("GIF truncated at half", Expect(400, "GIF data is truncated"), content=GIF_A[: len(GIF_A) // 2]),
        Case(
            "GIF corrupt data", Expect(400, "corrupt GIF data"), content=_corrupt(GIF_A, len(GIF_A) // 3, 40)
        ),
        Case("WebP truncated at half", Expect(400, "WEBP"), content=WEBP_A[: len(WEBP_A) // 2]),
        Case("WebP header only", Expect(400, "WEBP"), content=WEBP_A[:8]),
        Case("BMP truncated at half", Expect(400, "BMP data is truncated"), content=BMP_A[: len(BMP_A) // 2]),
        Case(
            "TIFF truncated at half",
            Expect(400, "TIFF data is truncated"),
            content=TIFF_A[: len(TIFF_A) // 2],
        ),
        # --- decompression bombs and oversize bodies (limits: 40 Mpx, 6 MiB)
        Case(
            "PNG bomb 10000x10000 (12 kB)",
            Expect(413, "10000x10000 = 100000000 pixels; limit is 40000000"),
            content=encode(Image.new("1", (10_000, 10_000)), "PNG"),
        ),
        Case(
            "GIF bomb 7000x7000",
            Expect(413, "7000x7000 = 49000000 pixels"),
            content=encode(Image.new("P", (7_000, 7_000)), "GIF"),
        ),
        Case(
            "PNG header claiming 100000x100000",
            Expect(413, "too many pixels"),
            content=_png_header(100_000, 100_000),
        ),
        Case(
            "body over the byte limit (declared)",
            Expect(413, f"limit is {LIMIT_BYTES}"),
            content=b"\x00" * (LIMIT_BYTES + 1),
        ),
        Case(
            "multipart over the byte limit",
            Expect(413, f"limit is {LIMIT_BYTES}"),
            files=_multipart(b"\x89PNG" + b"\x00" * LIMIT_BYTES),
        ),
        # --- unknown model, bad path parameters, bad top_k
        Case(
            "unknown model",
            Expect(404, "no model named 'nonexistent'; models being served:"),
            path="/models/nonexistent/predict",
            content=PNG_A,
        ),
        Case("model name too long", Expect(422), path=f"/models/{'m' * 65}/predict", content=PNG_A),
        Case(
            "unknown model info",
            Expect(404, "no model named 'nonexistent'"),
            method="GET",
            path="/models/nonexistent",
        ),
        Case("top_k=0", Expect(422, "greater than or equal to 1"), params={"top_k": 0}, content=PNG_A),
        Case("top_k=-3", Expect(422, "greater than or equal to 1"), params={"top_k": -3}, content=PNG_A),
        Case("top_k=1001", Expect(422, "less than or equal to 1000"), params={"top_k": 1001}, content=PNG_A),
        Case("top_k=abc", Expect(422, "valid integer"), params={"top_k": "abc"}, content=PNG_A),
        Case("top_k=1.5", Expect(422, "valid integer"), params={"top_k": "1.5"}, content=PNG_A),
        Case("top_k=99999999999999999999", Expect(422), params={"top_k": "9" * 20}, content=PNG_A),
        Case("GET /predict", Expect(405, "Method Not Allowed"), method="GET"),
        Case("unknown path", Expect(404, "Not Found"), path="/predict/../../etc/passwd", content=PNG_A),
        # --- valid images in awkward forms: the plain digit's prediction
        Case("PNG (reference)", ok, files=_multipart(PNG_A)),
        Case("PNG as raw body", ok, content=PNG_A, headers={"content-type": "image/png"}),
        Case("JPEG", ok, content=JPEG_A),
        Case("JPEG progressive", ok, content=encode(_digit(A).convert("RGB"), "JPEG", progressive=True)),
        Case("JPEG labelled image/png", ok, files=_multipart(JPEG_A, ctype="image/png")),
        Case("GIF", ok, content=GIF_A),
        Case("WebP", ok, content=WEBP_A),
        Case("HEIC", ok, content=HEIC_A),
        Case("AVIF", ok, content=AVIF_A),
        Case("BMP", ok, content=BMP_A),
        Case("TIFF", ok, content=TIFF_A),
        Case("animated GIF: first frame used", ok, content=_animated("GIF", A, B)),
        Case("animated WebP: first frame used", ok, content=_animated("WEBP", A, B)),
        Case("multi-page TIFF: first page used", ok, content=_animated("TIFF", A, B)),
        Case(
            "16-bit grayscale PNG",
            ok,
            content=encode(Image.fromarray(np.asarray(_digit(A), dtype=np.uint16) * 257), "PNG"),
        ),
        Case(
            "32-bit float TIFF",
            ok,
            content=encode(Image.fromarray(np.asarray(_digit(A), dtype=np.float32) / 255.0), "TIFF"),
        ),
        Case("CMYK JPEG", ok, content=encode(_digit(A).convert("CMYK"), "JPEG", quality=95)),
        Case("palette PNG", ok, content=encode(_digit(A).convert("P"), "PNG")),
        Case("palette PNG with transparency", ok, content=_palette_with_transparency(A)),
        Case("black ink on transparent RGBA", ok, content=_transparent_ink(A, 0, "RGBA")),
        Case("white ink on transparent LA", ok, content=_transparent_ink(A, 255, "LA")),
        Case("1-bit PNG", ok, content=encode(_digit(A).point(lambda v: 255 if v > 100 else 0).convert("1"))),
        Case(
            "dark ink on paper, 1600x1200 JPEG",
            ok,
            content=encode(_on_paper(A, (1600, 1200)), "JPEG", quality=90),
        ),
        Case("EXIF orientation 6 (PNG)", ok, content=_exif_rotated(A, 6)),
        Case("EXIF orientation 8 (PNG)", ok, content=_exif_rotated(A, 8)),
        Case("EXIF orientation 3 (JPEG)", ok, content=_exif_rotated(A, 3, "JPEG")),
        Case("other model path", ok, path="/models/mnist/predict", content=PNG_A),
        Case("top_k=1000 > classes", Expect(200, label=LA), params={"top_k": 1000}, content=PNG_A),
        # --- valid but degenerate: any well-formed prediction
        Case("1x1 black", Expect(200), content=encode(Image.new("L", (1, 1), 0))),
        Case("1x1 white RGB", Expect(200), content=encode(Image.new("RGB", (1, 1), (255, 255, 255)))),
        Case("1x5000 line", Expect(200), content=encode(Image.new("L", (1, 5000), 200))),
        Case("5000x1 line", Expect(200), content=encode(Image.new("L", (5000, 1), 200))),
        Case(
            "3x4000 stroke on white",
            Expect(200),
            content=encode(
                Image.fromarray(np.pad(np.zeros((4000, 1), np.uint8), ((0, 0), (1, 1)), constant_values=255))
            ),
        ),
        Case(
            "blank 640x480 page", Expect(200), content=encode(Image.new("RGB", (640, 480), "white"), "JPEG")
        ),
        Case(
            "JPEG with corrupt entropy data",
            Expect(400, "corrupt JPEG data"),
            content=_corrupt(JPEG_A, len(JPEG_A) // 2, 8),
        ),
    ]
    return cases


def _json_case(name: str, expect: Expect, body: bytes, path: str = "/predict", **kwargs) -> Case:
    return Case(name, expect, path=path, content=body, headers={"content-type": "application/json"}, **kwargs)


def _v2(inputs: list, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


B64_A = base64.b64encode(PNG_A).decode()
V2 = "/v2/models/mnist/infer"
V2_IMAGE = {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [B64_A]}


def protocol_corpus() -> list[Case]:
    """JSON bodies, the batch route, KServe V1 and Open Inference Protocol V2 requests."""
    return [
        # --- JSON bodies on the native predict route
        _json_case("JSON: not JSON", Expect(400, "body is not valid JSON"), b"{image_base64:"),
        _json_case("JSON: an array", Expect(400, "JSON body must be an object"), b"[1, 2]"),
        _json_case("JSON: neither image field", Expect(400, "exactly one of"), b'{"user_id": 3}'),
        _json_case(
            "JSON: invalid base64", Expect(400, "image_base64 is not valid base64"), b'{"image_base64": "@@"}'
        ),
        _json_case(
            "JSON: base64 of a PDF",
            Expect(415, "PDF is not a supported image format"),
            json.dumps({"image_base64": base64.b64encode(b"%PDF-1.7 x").decode()}).encode(),
        ),
        _json_case(
            "JSON: top_k 0",
            Expect(422, "greater than or equal to 1"),
            b'{"image_base64": "AAAA", "top_k": 0}',
        ),
        _json_case(
            "JSON: image_url ftp", Expect(400, "image URLs are disabled"), b'{"image_url": "ftp://x/y.png"}'
        ),
        _json_case(
            "JSON: base64 digit with unknown fields",
            Expect(200, label=LA),
            json.dumps({"image_base64": B64_A, "user_id": 1, "extra": [1, 2]}).encode(),
        ),
        # --- batch route
        Case(
            "batch: raw body, not multipart",
            Expect(422, "send a multipart/form-data body"),
            path="/models/mnist/predict/batch",
            content=PNG_A,
            headers={"content-type": "image/png"},
        ),
        Case(
            "batch: field 'file' instead of 'files'",
            Expect(422, "no field 'files'"),
            path="/models/mnist/predict/batch",
            files=_multipart(PNG_A),
        ),
        Case(
            "batch: 33 files (limit 32)",
            Expect(413, "limit is 32 (EDGE_MAX_BATCH_IMAGES)"),
            path="/models/mnist/predict/batch",
            files=[("files", (f"{i}.png", b"x", "image/png")) for i in range(33)],
        ),
        Case(
            "batch: unknown model",
            Expect(404, "no model named"),
            path="/models/nope/predict/batch",
            files=[("files", ("a.png", PNG_A, "image/png"))],
        ),
        # --- KServe V1 / TF-Serving
        _json_case("V1: not JSON", Expect(400, "not valid JSON"), b"nope", path="/v1/models/mnist:predict"),
        _json_case("V1: no instances", Expect(400, '"instances"'), b"{}", path="/v1/models/mnist:predict"),
        _json_case(
            "V1: instance without b64",
            Expect(400, "instance 0: expected"),
            b'{"instances": [{"image_bytes": "AAAA"}]}',
            path="/v1/models/mnist:predict",
        ),
        _json_case(
            "V1: instance that is not an image",
            Expect(415, "instance 0: body is not a recognised image"),
            b'{"instances": [{"b64": "aGVsbG8="}]}',
            path="/v1/models/mnist:predict",
        ),
        _json_case(
            "V1: unknown model",
            Expect(404, "no model named"),
            b'{"instances": []}',
            path="/v1/models/nope:predict",
        ),
        # --- Open Inference Protocol V2
        _json_case("V2: empty body", Expect(400, "empty body"), b"", path=V2),
        _json_case("V2: not JSON", Expect(400, "not valid JSON"), b"{", path=V2),
        _json_case("V2: NaN literal", Expect(400, "NaN is not valid JSON"), b'{"inputs": [NaN]}', path=V2),
        _json_case("V2: two inputs", Expect(400, "exactly one input"), _v2([V2_IMAGE, V2_IMAGE]), path=V2),
        _json_case(
            "V2: BYTES as UINT8",
            Expect(400, "must have datatype BYTES"),
            _v2([{**V2_IMAGE, "datatype": "UINT8"}]),
            path=V2,
        ),
        _json_case(
            "V2: shape says 3, data has 1",
            Expect(400, "says 3 images"),
            _v2([{**V2_IMAGE, "shape": [3]}]),
            path=V2,
        ),
        _json_case(
            "V2: FP32 with the wrong shape",
            Expect(400, "must have shape [-1, 28, 28, 1]"),
            _v2([{"name": "image", "shape": [1, 28, 28], "datatype": "FP32", "data": [0.0] * 784}]),
            path=V2,
        ),
        _json_case(
            "V2: 33 images (limit 32)",
            Expect(413, "33 images in one request; limit is 32"),
            _v2([{**V2_IMAGE, "shape": [33], "data": [B64_A] * 33}]),
            path=V2,
        ),
        _json_case(
            "V2: unknown output",
            Expect(400, "unknown output 'logits'"),
            _v2([V2_IMAGE], outputs=[{"name": "logits"}]),
            path=V2,
        ),
        _json_case(
            "V2: not an image",
            Expect(415, "image_bytes[0]: body is not a recognised image"),
            _v2([{**V2_IMAGE, "data": ["aGVsbG8="]}]),
            path=V2,
        ),  # fmt: skip
        Case(
            "V2: header length past the body",
            Expect(400, "Inference-Header-Content-Length is 5000"),
            path=V2,
            content=_v2([V2_IMAGE]),
            headers={"content-type": "application/octet-stream", "inference-header-content-length": "5000"},
        ),
        _json_case(
            "V2: unknown version",
            Expect(404, "has no version '9'"),
            _v2([V2_IMAGE]),
            path="/v2/models/mnist/versions/9/infer",
        ),
        _json_case(
            "V2: unknown model", Expect(404, "no model named"), _v2([V2_IMAGE]), path="/v2/models/nope/infer"
        ),
    ]


CORPUS = corpus() + protocol_corpus()


def _send(http: httpx.Client, case: Case) -> httpx.Response:
    return http.request(
        case.method,
        case.path,
        params=case.params,
        content=case.content,
        files=case.files,
        data=case.data,
        headers=case.headers,
    )


def test_corpus_size_and_names_are_unique() -> None:
    names = [c.name for c in CORPUS]
    assert len(names) == len(set(names))
    assert len(CORPUS) >= 70


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_bad_input(http: httpx.Client, case: Case) -> None:
    response = _send(http, case)
    assert response.status_code == case.expect.status, response.text
    assert response.headers.get("x-request-id"), "every response carries a request id"
    body = response.json()
    text = response.text
    for leak in ("Traceback", "/work/", "site-packages", '.py"', 'File "'):
        assert leak not in text, f"error response leaks internals: {text}"
    if case.expect.status >= 400:
        protocol = case.path.startswith(("/v1/", "/v2/"))
        assert set(body) == ({"error", "detail"} if protocol else {"detail"}) and body["detail"], body
        if case.expect.detail is not None:
            assert case.expect.detail in str(body["detail"]), body
        return
    assert body["model"] == "mnist"
    probabilities = [entry["probability"] for entry in body["top_k"]]
    assert body["confidence"] == probabilities[0] and probabilities == sorted(probabilities, reverse=True)
    assert probabilities[-1] >= 0.0 and sum(probabilities) <= 1.0 + 1e-6
    assert body["top_k"][0]["label"] == body["prediction"]
    if case.expect.label is not None:
        assert body["prediction"] == str(case.expect.label), body


def test_reference_digits_are_what_the_model_predicts(http: httpx.Client) -> None:
    # The corpus's "valid" entries compare against these labels: the model must get the plain
    # digits right, else a variant's agreement would prove nothing.
    for index, label in ((A, LA), (B, LB)):
        response = http.post("/predict", content=encode(_digit(index)))
        assert response.json()["prediction"] == str(label)


def test_animated_uses_the_first_frame_not_the_second(http: httpx.Client) -> None:
    swapped = http.post("/predict", content=_animated("GIF", B, A)).json()
    assert swapped["prediction"] == str(LB)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_gives_the_upright_probabilities(http: httpx.Client, orientation: int) -> None:
    upright = http.post("/predict", params={"top_k": 10}, content=encode(_digit(A))).json()
    rotated = http.post("/predict", params={"top_k": 10}, content=_exif_rotated(A, orientation)).json()
    # Lossless PNG, rotation by multiples of 90 deg: bit-identical tensor, identical answer.
    assert rotated["top_k"] == upright["top_k"]


def test_top_k_returns_at_most_the_number_of_classes(http: httpx.Client) -> None:
    body = http.post("/predict", params={"top_k": 1000}, content=PNG_A).json()
    probabilities = [entry["probability"] for entry in body["top_k"]]
    assert len(body["top_k"]) == 10
    assert probabilities == sorted(probabilities, reverse=True)
    assert abs(sum(probabilities) - 1.0) < 1e-4


# --- bodies over the byte limit are refused without being read whole ---------------------


def _raw_request(url: str, head: bytes, chunks: Callable[[], bytes | None]) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks()`` until it returns None or the server answers.

    Returns (response bytes, body bytes sent before the server answered).
    """
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        response = b""
        while True:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            chunk = chunks()
            if chunk is None:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(30)
        try:
            while b"\r\n\r\n" not in response or not response.endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (ConnectionResetError, TimeoutError):
            pass
    return response, sent


def test_declared_oversize_body_is_refused_before_any_byte_is_sent(server_url: str) -> None:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    response, sent = _raw_request(server_url, head, lambda: None)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"request body is 1000000000 bytes; limit is 6291456" in response
    assert sent == 0


def test_chunked_oversize_body_is_cut_off_at_the_limit(server_url: str) -> None:
    # No Content-Length: the server must count the stream and stop it, not buffer 200 MiB.
    chunk = b"\x00" * (1 << 20)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    budget = {"left": 200}

    def next_chunk() -> bytes | None:
        if budget["left"] == 0:
            return None
        budget["left"] -= 1
        return framed

    head = (
        b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    response, sent = _raw_request(server_url, head, next_chunk)
    assert response.startswith(b"HTTP/1.1 413"), response[:300]
    assert b"request body exceeds the limit of 6291456 bytes" in response
    # Answered after ~6 MiB plus what socket buffers absorbed, far from the 200 MiB offered.
    assert sent < 64 * (1 << 20), sent


def test_server_still_healthy_after_the_corpus(http: httpx.Client) -> None:
    for case in CORPUS:
        _send(http, case)
    health = http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert http.post("/predict", content=PNG_A).json()["prediction"] == str(LA)
