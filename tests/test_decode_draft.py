"""Decoding only what the model needs: JPEG DCT scaling through ``decode_image(min_side=...)``.

Real photos (cats-vs-dogs) upscaled to phone size (4032x3024) and encoded as JPEG, the way a
12 MP upload arrives. The decoder may shrink a JPEG by 2, 4 or 8 but never below ``min_side``
on either side; limits, EXIF orientation and modes keep working.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from service.errors import PayloadTooLarge
from service.images.decode import decode_image
from service.images.preprocessing import DECODE_MARGIN, decode_min_side, preprocess
from service.manifest import Manifest

from .support import BUNDLED_MODELS, SHARED_DATA

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data

PHONE = (4032, 3024)
PET = SHARED_DATA / "cats_vs_dogs" / "dogs" / "dog.4001.jpg"


def _phone_jpeg(mode: str = "RGB", orientation: int | None = None, size=PHONE) -> bytes:
    image = Image.open(PET).convert("RGB").resize(size, Image.Resampling.BICUBIC).convert(mode)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def _imagenet_manifest(resize_shorter: int | None, side: int = 224) -> Manifest:
    base = json.loads((BUNDLED_MODELS / "mnist" / "manifest.json").read_text())
    base["input"]["shape"] = [None, side, side, 3]
    base["preprocessing"] = {"kind": "imagenet", "mode": "tf", "resize_shorter": resize_shorter}
    base["labels"] = [str(i) for i in range(10)]
    return Manifest.model_validate(base)


@pytest.mark.parametrize(
    "min_side, expected",
    [(336, (504, 378)), (378, (504, 378)), (379, (1008, 756)), (448, (1008, 756)), (760, (2016, 1512))],
)
def test_phone_jpeg_decodes_at_the_smallest_scale_that_keeps_min_side(min_side, expected):
    image = decode_image(_phone_jpeg(), 10**8, min_side=min_side)
    assert image.size == expected
    assert min(image.size) >= min_side


def test_without_min_side_or_when_already_small_the_size_is_the_original():
    assert decode_image(_phone_jpeg(), 10**8).size == PHONE
    small = _phone_jpeg(size=(500, 375))
    assert decode_image(small, 10**8, min_side=448).size == (500, 375)


def test_exif_rotation_is_applied_after_scaling_and_swaps_the_sides():
    image = decode_image(_phone_jpeg(orientation=6), 10**8, min_side=448)  # 90 degrees clockwise
    assert image.size == (756, 1008)
    reference = decode_image(_phone_jpeg(), 10**8, min_side=448).transpose(Image.Transpose.ROTATE_270)
    diff = np.abs(np.asarray(image, np.int16) - np.asarray(reference, np.int16))
    assert diff.mean() < 1.0


def test_pixel_limit_applies_to_the_full_size_before_any_scaling():
    data = _phone_jpeg()
    with pytest.raises(PayloadTooLarge, match="4032x3024"):
        decode_image(data, PHONE[0] * PHONE[1] - 1, min_side=224)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_scale_and_keep_their_mode(mode):
    image = decode_image(_phone_jpeg(mode), 10**8, min_side=448)
    assert image.mode == mode and image.size == (1008, 756)


def test_png_ignores_min_side():
    buf = io.BytesIO()
    Image.open(PET).convert("RGB").resize((1600, 1200)).save(buf, "PNG")
    assert decode_image(buf.getvalue(), 10**8, min_side=448).size == (1600, 1200)


@pytest.mark.parametrize(
    "resize_shorter, side, expected", [(None, 224, 336), (256, 224, 384), (None, 160, 240), (None, 75, 113)]
)
def test_imagenet_min_side_is_the_margin_times_the_resize_target_rounded_up(resize_shorter, side, expected):
    assert DECODE_MARGIN == 1.5
    assert decode_min_side(_imagenet_manifest(resize_shorter, side)) == expected


def test_phone_jpeg_for_a_224_model_decodes_at_one_eighth():
    manifest = _imagenet_manifest(None)
    assert decode_image(_phone_jpeg(), 10**8, min_side=decode_min_side(manifest)).size == (504, 378)


def test_digit_min_side_is_the_normalisers_working_resolution():
    manifest = Manifest.model_validate_json((BUNDLED_MODELS / "mnist" / "manifest.json").read_text())
    assert decode_min_side(manifest) >= 28 * DECODE_MARGIN


@pytest.mark.parametrize("resize_shorter", [None, 256])
def test_scaled_decode_gives_nearly_the_same_model_input(resize_shorter):
    """The tensor from a DCT-scaled decode matches the full decode's to within JPEG noise."""
    manifest = _imagenet_manifest(resize_shorter)
    data = _phone_jpeg()
    full = preprocess(decode_image(data, 10**8), manifest)
    scaled = preprocess(decode_image(data, 10**8, min_side=decode_min_side(manifest)), manifest)
    assert full.shape == scaled.shape == (1, 224, 224, 3)
    # tf mode: [-1, 1], i.e. 2/255 per grey level; mean difference under one grey level.
    assert np.abs(full - scaled).mean() < 2 / 255
