"""MNIST-style normalisation on real digits and on the forms real uploads take."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from service.images.preprocessing import mnist_digit_tensor
from service.manifest import MnistDigitPreprocessing

from .support import mnist_test_digits
from .uploads import as_real_upload

SPEC = MnistDigitPreprocessing()


@pytest.fixture(scope="module")
def digits():
    return mnist_test_digits(300)


def _tensor(image: Image.Image) -> np.ndarray:
    out = mnist_digit_tensor(image, SPEC)
    assert out.shape == (28, 28, 1) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0
    return out[..., 0]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_mnist_digits_pass_through_nearly_unchanged(digits):
    images, _ = digits
    correlations = [_correlation(_tensor(Image.fromarray(d)), d / 255.0) for d in images]
    assert np.median(correlations) > 0.97
    # The rest differ by a one-pixel shift: integer centring rounds the other way.
    assert np.mean(np.array(correlations) > 0.9) >= 0.98


def test_real_upload_forms_normalise_back_to_the_mnist_digit(digits):
    images, _ = digits
    rng = np.random.default_rng(3)
    correlations = [
        _correlation(_tensor(as_real_upload(d, rng)), _tensor(Image.fromarray(d))) for d in images
    ]
    assert np.median(correlations) > 0.9


def test_centre_of_mass_lands_at_the_canvas_centre(digits):
    images, _ = digits
    for digit in images[:50]:
        out = _tensor(as_real_upload(digit, np.random.default_rng(int(digit.sum()))))
        ys, xs = np.indices(out.shape)
        cy, cx = (ys * out).sum() / out.sum(), (xs * out).sum() / out.sum()
        assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0
        rows, cols = np.nonzero(out > 0.05)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 22  # fits the 20x20 box (+ resampling halo)


def test_black_strokes_on_a_transparent_canvas(digits):
    """Browser canvases export black ink with alpha, on fully transparent pixels."""
    digit = digits[0][0]
    rgba = np.zeros((140, 140, 4), dtype=np.uint8)
    ink = np.asarray(Image.fromarray(digit).resize((140, 140), Image.Resampling.BICUBIC))
    rgba[..., 3] = ink  # colour stays black; only alpha carries the stroke
    white_ink = rgba.copy()
    white_ink[..., :3] = 255
    reference = _tensor(Image.fromarray(digit))
    assert _correlation(_tensor(Image.fromarray(rgba, "RGBA")), reference) > 0.9
    assert _correlation(_tensor(Image.fromarray(white_ink, "RGBA")), reference) > 0.9


def test_sixteen_bit_grayscale_keeps_its_range(digits):
    digit = digits[0][0]
    sixteen = Image.fromarray(digit.astype(np.uint16) * 257)  # mode I;16
    assert _correlation(_tensor(sixteen), _tensor(Image.fromarray(digit))) > 0.99


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_images_give_an_empty_canvas(value):
    assert not _tensor(Image.new("L", (50, 30), value)).any()


def test_extreme_aspect_ratio_stays_inside_the_canvas():
    line = Image.new("L", (1000, 3), 0)
    line.paste(255, (10, 0, 990, 3))
    out = _tensor(line)
    assert out.any() and out[:, 4:24].any()


@pytest.mark.parametrize("size", [(1, 1), (2, 1), (3, 3), (1, 9)])
def test_tiny_mid_grey_images(size):
    """Mid-grey backgrounds take the local-contrast polarity test, down to a single pixel."""
    pixels = np.full(size[::-1], 90, dtype=np.uint8)
    pixels.flat[0] = 200
    assert _tensor(Image.fromarray(pixels)).shape == (28, 28)


def test_digit_at_the_frame_edge_of_an_odd_sized_photo(digits):
    """The digit's box, scaled from the working image back to the photo, can round a hair past
    the photo's edge (201 working rows x 202 / 201 = 202.00000000000003): it is clamped, not
    an error (it raised ValueError before)."""
    images, _ = digits
    digit = Image.fromarray(255 - images[0]).resize((150, 150), Image.Resampling.BICUBIC)
    photo = Image.new("L", (385, 202), 245)
    photo.paste(digit, (120, 92))  # the digit's lower strokes run off the bottom of the frame
    out = _tensor(photo.convert("RGB"))
    assert out.max() > 0.5 and (out > 0.3).sum() >= 40


@pytest.mark.parametrize("level", [0, 70, 90, 115, 255])
def test_single_pixel_images_of_any_grey(level):
    """A 1x1 image between the two polarities' medians raised ValueError (np.partition's kth
    out of bounds) before; any single pixel is blank: no digit."""
    assert not _tensor(Image.new("L", (1, 1), level)).any()


def test_concurrent_calls_of_different_sizes_match_one_at_a_time(digits):
    """The coarse pass works on buffers lent from a small pool (service.images.preprocessing.workspace):
    calls on several threads at once, on photos of different sizes and polarities, must give
    exactly what each gives alone."""
    images, _ = digits
    photos = []
    for i, size in enumerate([(385, 202), (640, 480), (300, 420), (1008, 756), (97, 131), (512, 512)]):
        photo = Image.new("RGB", size, (235, 228, 210))
        digit = Image.fromarray(255 - images[i]).resize((min(size) // 2,) * 2, Image.Resampling.BICUBIC)
        photo.paste(digit.convert("RGB"), (size[0] // 4, size[1] // 4))
        photos.append(photo if i % 2 else Image.fromarray(255 - np.asarray(photo)))  # light ink on dark too
    alone = [_tensor(photo) for photo in photos]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(_tensor, photos * 8))
    for i, out in enumerate(together):
        assert np.array_equal(out, alone[i % len(photos)])
    assert all(out.max() > 0.5 for out in alone)
