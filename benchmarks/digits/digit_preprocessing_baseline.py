"""BASELINE for benchmarks/digits/digit_preprocessing.py: the digit preprocessing as it was before issue 10
(service/images/preprocessing/digits.py at 18e570b), kept verbatim so old and new run side by side.

Original docstring: MNIST-style normalisation of a photo or drawing of one handwritten digit.

MNIST digits are light ink on black, size-normalised to fit a 20x20 box (aspect kept,
anti-aliased) and placed in a 28x28 field so that the centre of mass of the ink sits at the
centre (LeCun, Cortes, Burges, http://yann.lecun.com/exdb/mnist/). Real uploads are dark ink on
paper, any size, off-centre, often with transparency; this module brings them to that form.
Applied to an MNIST test digit it is (nearly) the identity.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from service.images.preprocessing.color import RESAMPLING, gray_float, has_alpha, rgba_float
from service.manifest import MnistDigitPreprocessing

# Ink fainter than this fraction of the strongest stroke is treated as paper texture / noise.
NOISE_FLOOR = 0.1
# Below this contrast (ink vs background, on a 0-1 scale) the image is treated as blank.
MIN_CONTRAST = 0.1
# MNIST's mean centre of mass is at pixel index (14.0, 14.0) in 28x28 (measured on the test
# set: 13.99, 14.01), i.e. canvas // 2 in index coordinates, reached by integer shifts.


def mnist_digit_tensor(image: Image.Image, spec: MnistDigitPreprocessing) -> np.ndarray:
    """Normalise one digit image.

    Args:
        image: any Pillow image (any size and mode; alpha and 16-bit supported).
        spec: box and canvas sizes and the resampling filter.

    Returns:
        float32 array (canvas, canvas, 1) in [0, 1], light ink on black. A blank image (no
        contrast) gives all zeros.
    """
    ink = _ink_map(image)
    canvas = np.zeros((spec.canvas, spec.canvas), dtype=np.float32)
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return canvas[..., np.newaxis]
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    digit = _fit_box(crop, spec.box, RESAMPLING[spec.resample])
    _paste_centred_by_mass(canvas, digit)
    return canvas[..., np.newaxis]


def _ink_map(image: Image.Image) -> np.ndarray:
    """Float32 (H, W) in [0, 1]: ink strength, background at 0."""
    if has_alpha(image):
        luminance, alpha = rgba_float(image)
        if alpha.min() < 0.99:
            # Drawn on a transparent canvas: composite over a background that contrasts with
            # the ink's own colour, so both black-on-transparent and white-on-transparent work.
            opaque = alpha > 0.5
            ink_is_dark = _ink_is_dark(luminance, opaque)
            background = 1.0 if ink_is_dark else 0.0
            gray = luminance * alpha + background * (1.0 - alpha)
        else:
            gray = luminance
    else:
        gray = gray_float(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # dark ink on light paper: MNIST wants light on dark
        gray = 1.0 - gray
        border = 1.0 - border
    ink = np.clip(gray - float(np.median(border)), 0.0, None)
    peak = float(ink.max(initial=0.0))
    if peak < MIN_CONTRAST:
        return np.zeros_like(ink)
    ink /= peak
    ink[ink < NOISE_FLOOR] = 0.0
    return ink


def _ink_is_dark(luminance: np.ndarray, opaque: np.ndarray) -> bool:
    """Whether the opaque strokes are dark ink (True) or light ink (False).

    Colour-keyed transparency (a palette index or tRNS colour) keeps the real background colour
    under the transparent pixels, and anti-aliased strokes then fade towards it: a thin dark
    stroke can average ~0.5. So when the hidden colour clearly differs from the strokes, the
    ink is whichever side of it the strokes are; otherwise the strokes' mean decides.
    """
    if not opaque.any():
        return True
    ink = float(luminance[opaque].mean())
    if not opaque.all():
        hidden = float(np.median(luminance[~opaque]))
        if abs(ink - hidden) > 0.25:
            return ink < hidden
    return ink < 0.5


def _fit_box(crop: np.ndarray, box: int, resample: Image.Resampling) -> np.ndarray:
    """Resize so the longer side is ``box`` pixels, keeping the aspect ratio."""
    height, width = crop.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop).resize(size, resample)  # float32 -> mode "F"
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _paste_centred_by_mass(canvas: np.ndarray, digit: np.ndarray) -> None:
    """Paste ``digit`` into ``canvas`` with its centre of mass at index (n // 2, n // 2)."""
    n = canvas.shape[0]
    height, width = digit.shape
    mass = float(digit.sum())
    if mass > 0:
        ys, xs = np.indices(digit.shape)
        cy, cx = float((ys * digit).sum()) / mass, float((xs * digit).sum()) / mass
    else:
        cy, cx = (height - 1) / 2, (width - 1) / 2
    top = int(round(n // 2 - cy))
    left = int(round(n // 2 - cx))
    # Keep the whole digit on the canvas even when its mass is far off its box centre.
    top = min(max(top, 0), n - height)
    left = min(max(left, 0), n - width)
    canvas[top : top + height, left : left + width] = digit
