"""The general ``image`` preprocessing: resize (or resize + centre-crop), then one affine map
per channel, ``value = (pixel x scale - mean[c]) / std[c]``, written in the model's layout.

numpy + Pillow only (this runs in the Lambda package). The affine map is folded into one
multiplier and one offset per channel, ``a[c] = scale / std[c]``, ``b[c] = -mean[c] / std[c]``,
and applied straight from the 8-bit pixels into the float32 output (no float copy of the image
first, no transposed copy after):

- NHWC: the (H, W x C) view of the pixels times a row of ``a`` tiled W times, plus ``b`` tiled
  the same way: contiguous rows, so numpy's inner loop runs over W x C values, not over C = 3
  (a (C,) broadcast is ~5x slower on 224 x 224 x 3); when every channel has the same map
  (``x / 255``, Keras ``tf`` mode, grey) ``a`` and ``b`` are scalars.
- NCHW: Pillow's ``split()`` gives each channel as a contiguous plane; each is scaled into its
  plane of the output, so the layout change costs nothing.

BGR models get their channels reordered by Pillow (``Image.merge``) before the map. Against
the per-mode Keras formulas (``x / 127.5 - 1`` ...) values differ by float32 rounding only (at
most a few ulps): tests check both against Keras's ``preprocess_input`` on real photos;
``benchmarks/in_process/image_preprocessing.py`` times it against the ImageNet path it replaces.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from service.images.preprocessing.color import RESAMPLING, rgb_image
from service.manifest import ImagePreprocessing

# Pillow's two-step resize (https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.Image.resize):
# first an integer box reduction while the image stays >= REDUCING_GAP x the target, then the
# named filter. At 3.0 the result is, per Pillow, indistinguishable from the filter alone, and a
# 12 MP PNG resizes ~3x faster; images under 3x the target (every decoded JPEG) are unaffected.
REDUCING_GAP: float | None = 3.0  # None: the filter alone (benchmarks compare with it)


def resize_and_crop(
    image: Image.Image, size: tuple[int, int], resize_shorter: int | None, resample: str
) -> Image.Image:
    """``image`` (any mode) resized to ``size`` = (height, width), same mode.

    With ``resize_shorter``, the shorter side is scaled to that many pixels (aspect kept) and
    the centre ``size`` crop is taken; without, the image is resized straight to ``size``.
    """
    height, width = size
    filter_ = RESAMPLING[resample]
    if resize_shorter is None:
        return image.resize((width, height), filter_, reducing_gap=REDUCING_GAP)
    scale = resize_shorter / min(image.size)
    scaled = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(scaled, filter_, reducing_gap=REDUCING_GAP)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def model_bands(image: Image.Image, channels: int) -> Image.Image:
    """8-bit "L" (1 channel) or "RGB" (3) image: transparency composited over white, 16-bit
    rescaled (``rgb_image``); grey is Pillow's ``convert("L")`` of that, as
    ``keras.utils.load_img(color_mode="grayscale")`` does before resizing.

    Raises:
        ValueError: ``channels`` is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ValueError(f"image preprocessing makes 1 or 3 channels, the model has {channels}")
    rgb = rgb_image(image)
    return rgb.convert("L") if channels == 1 else rgb


def bgr(rgb: Image.Image) -> Image.Image:
    """The bands of an RGB image in B, G, R order (a Pillow image still labelled RGB)."""
    red, green, blue = rgb.split()
    return Image.merge("RGB", (blue, green, red))


@lru_cache(maxsize=64)
def affine(spec: ImagePreprocessing, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (channels,) multiplier ``a`` and offset ``b``: ``value = pixel * a + b``.

    Computed in float64 from ``scale``, ``mean`` and ``std``, then rounded once to float32.
    Raises ValueError when the spec does not fit ``channels`` (``ImagePreprocessing.per_channel``).
    """
    mean, std = spec.per_channel(channels)
    a = spec.scale / np.asarray(std, dtype=np.float64)
    b = -np.asarray(mean, dtype=np.float64) / np.asarray(std, dtype=np.float64)
    return a.astype(np.float32), b.astype(np.float32)


@lru_cache(maxsize=64)
def _tiled(spec: ImagePreprocessing, channels: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = affine(spec, channels)
    return np.tile(a, width), np.tile(b, width)


def normalise(pixels: Image.Image, spec: ImagePreprocessing, layout: str = "NHWC") -> np.ndarray:
    """float32 (H, W, C) for NHWC or (C, H, W) for NCHW from an 8-bit "L" or "RGB" image whose
    bands are already in the model's channel order (``model_bands``, ``bgr``)."""
    channels = len(pixels.getbands())
    width, height = pixels.size
    if layout == "NCHW":
        a, b = affine(spec, channels)
        out = np.empty((channels, height, width), dtype=np.float32)
        for c, band in enumerate(pixels.split()):
            np.multiply(np.asarray(band), a[c], out=out[c])
            out[c] += b[c]
        return out
    flat = np.empty((height, width * channels), dtype=np.float32)
    rows = np.asarray(pixels).reshape(height, width * channels)
    a, b = affine(spec, channels)
    if (a == a[0]).all() and (b == b[0]).all():  # one map for every channel: scalars, no row to read
        np.multiply(rows, a[0], out=flat)
        flat += b[0]
    else:
        a_row, b_row = _tiled(spec, channels, width)
        np.multiply(rows, a_row, out=flat)
        flat += b_row
    return flat.reshape(height, width, channels)


def image_tensor(
    image: Image.Image,
    spec: ImagePreprocessing,
    size: tuple[int, int],
    channels: int,
    layout: str = "NHWC",
) -> np.ndarray:
    """One image's model input: float32 (H, W, C) for NHWC, (C, H, W) for NCHW.

    Args:
        image: a decoded Pillow image, any mode and size.
        spec: the manifest's ``image`` preprocessing.
        size: the model's (height, width); channels: 1 or 3; layout: ``NHWC`` or ``NCHW``.

    Raises:
        ValueError: ``channels`` is not 1 or 3, or the spec's mean/std do not fit it.
    """
    affine(spec, channels)  # fails early, before any resizing, when the spec does not fit
    resized = resize_and_crop(model_bands(image, channels), size, spec.resize_shorter, spec.resample)
    if channels == 3 and spec.channel_order == "BGR":
        resized = bgr(resized)
    return normalise(resized, spec, layout)
