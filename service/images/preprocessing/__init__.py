"""Turn a decoded image into the model's input tensor, as the manifest specifies.

numpy + Pillow only: this runs in the Lambda package, where TensorFlow is absent.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from service.images.preprocessing import digits
from service.images.preprocessing.digits import mnist_digit_tensor
from service.images.preprocessing.image import image_tensor
from service.images.preprocessing.imagenet import imagenet_tensor
from service.manifest import (
    ImageNetPreprocessing,
    ImagePreprocessing,
    Manifest,
    MnistDigitPreprocessing,
    Preprocessing,
    TensorSpec,
)

__all__ = [
    "decode_min_side",
    "preprocess",
    "model_input",
    "mnist_digit_tensor",
    "image_tensor",
    "imagenet_tensor",
]

# Decode at least this many times the side the resize targets: the resize filter then still
# averages >= 1.5 source pixels per output pixel on the shorter side. At 1.5 a 4:3 12 MP JPEG
# for a 224x224 model decodes at 1/8 scale (504x378, each pixel an 8x8 block's DC mean) instead
# of 1/4 (1008x756); top-1 on 4032-px copies of ImageNet val and the cats-vs-dogs validation
# split is that of decoding at full size (benchmarks/accuracy/decode_accuracy.py measures both the time
# and the accuracy; docs/images.md "Decoding only what the model needs").
DECODE_MARGIN = 1.5


@lru_cache(maxsize=64)
def _as_image(spec: ImageNetPreprocessing) -> ImagePreprocessing:
    return spec.as_image()


def decode_min_side(manifest: Manifest) -> int:
    """The smallest image side, in pixels, ``preprocess`` needs to be exact for ``manifest``.

    Photos (``image`` and ``imagenet``): ``DECODE_MARGIN`` x the side the resize targets
    (``resize_shorter``, else the larger input side, as each side is resized on its own),
    rounded up: 336 for 224x224.
    Digits: the normaliser's working resolution (``digits.WORKING_SIDE``), below which it
    would itself downscale. The decoder may shrink larger images (JPEG DCT scaling) down to
    this, never below.
    """
    return min_side_for(manifest.preprocessing, manifest.input)


def min_side_for(spec: Preprocessing, input_spec: TensorSpec) -> int:
    """``decode_min_side`` from its two parts (the converter decodes before a manifest exists)."""
    if isinstance(spec, ImagePreprocessing | ImageNetPreprocessing):
        height, width, _ = input_spec.height_width_channels
        return math.ceil(DECODE_MARGIN * (spec.resize_shorter or max(height, width)))
    if isinstance(spec, MnistDigitPreprocessing):
        return digits.WORKING_SIDE
    raise TypeError(f"unknown preprocessing {spec!r}")  # pragma: no cover - closed union


def preprocess(image: Image.Image, manifest: Manifest) -> np.ndarray:
    """Build a batch of one for ``manifest``'s model.

    Returns:
        float32 array of shape (1, H, W, C) for NHWC models or (1, C, H, W) for NCHW ones,
        with H, W, C from ``manifest.input``.
    """
    return model_input(image, manifest.preprocessing, manifest.input)


def model_input(image: Image.Image, spec: Preprocessing, input_spec: TensorSpec) -> np.ndarray:
    """``preprocess`` from its two parts: float32 (1, H, W, C) or (1, C, H, W) for ``input_spec``
    (the converter builds calibration and evaluation tensors with it before a manifest exists).

    Raises:
        ValueError: the preprocessing cannot make the input's shape (e.g. ``mnist_digit`` for a
            3-channel input).
    """
    height, width, channels = input_spec.height_width_channels
    layout = input_spec.layout
    if isinstance(spec, ImageNetPreprocessing):
        if channels != 3:
            raise ValueError(f"imagenet preprocessing needs a 3-channel input, model has {channels}")
        spec = _as_image(spec)
    if isinstance(spec, ImagePreprocessing):
        # Written in the model's layout directly: no transposed copy.
        return image_tensor(image, spec, (height, width), channels, layout)[np.newaxis]
    if isinstance(spec, MnistDigitPreprocessing):
        if (height, width, channels) != (spec.canvas, spec.canvas, 1):
            raise ValueError(f"mnist_digit preprocessing needs a {spec.canvas}x{spec.canvas}x1 input")
        hwc = mnist_digit_tensor(image, spec)
    else:  # pragma: no cover - the manifest's discriminated union admits nothing else
        raise TypeError(f"unknown preprocessing {spec!r}")
    batch = hwc[np.newaxis]
    if layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)
