"""HEIC and AVIF uploads: real photos and a real MNIST digit encoded by the libraries' encoders.

HEIC files are written by pillow-heif's x265 encoder (and decoded by the service's pi-heif), AVIF
files by Pillow (libavif), from the cats-vs-dogs photos and MNIST test digits in ../shared.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from service.engine.pipeline import EncodedImages, classify
from service.engine.registry import load_model
from service.errors import BadImage, PayloadTooLarge
from service.images import heif
from service.images.decode import decode_image

from .support import BUNDLED_MODELS, PROJECT_ROOT, SHARED_DATA, encode, heic_bytes, mnist_test_digits

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data

CAT_PHOTO = SHARED_DATA / "cats_vs_dogs" / "cats" / "cat.4002.jpg"
DOG_PHOTO = SHARED_DATA / "cats_vs_dogs" / "dogs" / "dog.4001.jpg"
FORMATS = ["HEIF", "AVIF"]
MAX_PIXELS = 40_000_000


def encode_as(image: Image.Image, fmt: str, **save_args) -> bytes:
    if fmt == "HEIF":
        return heic_bytes(image, **save_args)
    return encode(image, fmt, quality=90, **save_args)


def photo(path=CAT_PHOTO) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("path", [CAT_PHOTO, DOG_PHOTO], ids=["cat", "dog"])
def test_real_photo_decodes_like_its_jpeg(fmt: str, path) -> None:
    original = photo(path)
    data = encode_as(original, fmt)
    assert heif.container_format(data) == fmt
    decoded = decode_image(data, MAX_PIXELS)
    assert decoded.size == original.size
    # Lossy at quality 90: mean absolute difference of a few levels out of 255.
    difference = np.abs(np.asarray(decoded.convert("RGB"), float) - np.asarray(original, float)).mean()
    assert difference < 3.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_exif_orientation_is_applied_once(fmt: str) -> None:
    original = photo()  # 375 wide, 499 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(encode_as(original, fmt, exif=exif.tobytes()), MAX_PIXELS)
    assert decoded.size == (original.height, original.width)
    expected = np.asarray(original.transpose(Image.Transpose.ROTATE_270), float)
    assert np.abs(np.asarray(decoded.convert("RGB"), float) - expected).mean() < 3.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_first_frame_of_a_sequence_is_used(fmt: str) -> None:
    first, second = Image.new("RGB", (64, 48), (250, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 250))
    if fmt == "HEIF":
        data = heic_bytes(first, append_images=(second,))
    else:
        data = encode(first, fmt, save_all=True, append_images=[second])
    red, green, blue = decode_image(data, MAX_PIXELS).convert("RGB").getpixel((10, 10))
    assert red > 200 and blue < 50


@pytest.mark.parametrize("fmt", FORMATS)
def test_pixel_limit_is_checked_from_the_header(fmt: str) -> None:
    data = encode_as(photo(), fmt)
    # Zero the coded pixels (the 'mdat' payload), keep every box: decoding would fail, so a
    # 413 rather than a 400 proves the limit was applied from the header, before decoding.
    start = data.index(b"mdat") + 4
    no_pixels = data[:start] + bytes(len(data) - start)
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(no_pixels, max_pixels=375 * 499 - 1)
    with pytest.raises(BadImage):
        decode_image(no_pixels, MAX_PIXELS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupt_files_are_a_400_not_a_500(fmt: str) -> None:
    data = encode_as(photo(), fmt)
    garbled = data[:40] + bytes(len(data) - 40)
    with pytest.raises(BadImage, match=fmt):
        decode_image(garbled, MAX_PIXELS)
    with pytest.raises(BadImage):
        decode_image(data[: len(data) // 2], MAX_PIXELS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_mnist_digits_classify_the_same_as_png(fmt: str) -> None:
    model = load_model(BUNDLED_MODELS / "mnist" / "manifest.json", intra_op_threads=1)
    digits, labels = mnist_test_digits(12)
    agree = 0
    for digit, label in zip(digits, labels, strict=True):
        # Encoded as RGB: HEVC and AV1 encoders work on colour planes; the model converts to grey.
        rgb = Image.fromarray(digit).convert("RGB")
        files = EncodedImages([encode(rgb, "PNG"), encode_as(rgb, fmt)])
        png_outcome, fmt_outcome = classify(model, files, 1, max_pixels=MAX_PIXELS).outcomes
        assert png_outcome.ranking and fmt_outcome.ranking, (png_outcome.error, fmt_outcome.error)
        from_png, from_fmt = png_outcome.ranking[0], fmt_outcome.ranking[0]
        assert from_png.class_index == label
        agree += from_fmt.class_index == from_png.class_index
    assert agree == len(digits)


def test_pi_heif_is_loaded_on_the_first_heic_only(tmp_path) -> None:
    files = {
        "a.jpg": CAT_PHOTO.read_bytes(),
        "a.avif": encode_as(photo(), "AVIF"),
        "a.heic": encode_as(photo(), "HEIF"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    script = textwrap.dedent(
        """
        import sys
        from service.errors import UnsupportedImage
        from service.images.decode import decode_image
        jpeg, avif, heic = (open(p, "rb").read() for p in sys.argv[1:4])
        try:  # HEIF is in ALLOWED_FORMATS but not registered yet: must be a 415, not a KeyError
            decode_image(b"plain text, not an image", 40_000_000)
        except UnsupportedImage:
            print("text: 415")
        decode_image(jpeg, 40_000_000)
        decode_image(avif, 40_000_000)
        print("after jpeg+avif:", "pi_heif" in sys.modules)
        decode_image(heic, 40_000_000)
        print("after heic:", "pi_heif" in sys.modules)
        """
    )
    paths = [str(tmp_path / name) for name in files]
    result = subprocess.run(
        [sys.executable, "-c", script, *paths], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["text: 415", "after jpeg+avif: False", "after heic: True"]
