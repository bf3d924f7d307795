"""Turn a decoded image into the model's input tensor, as the manifest specifies.

numpy + Pillow only: this runs in the Lambda package, where TensorFlow is absent.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..manifest import ImageNetPreprocessing, Manifest, MnistDigitPreprocessing
from .digits import mnist_digit_tensor
from .imagenet import imagenet_tensor

__all__ = ["preprocess", "mnist_digit_tensor", "imagenet_tensor"]


def preprocess(image: Image.Image, manifest: Manifest) -> np.ndarray:
    """Build a batch of one for ``manifest``'s model.

    Returns:
        float32 array of shape (1, H, W, C) for NHWC models or (1, C, H, W) for NCHW ones,
        with H, W, C from ``manifest.input``.
    """
    height, width, channels = manifest.input.height_width_channels
    spec = manifest.preprocessing
    if isinstance(spec, MnistDigitPreprocessing):
        if (height, width, channels) != (spec.canvas, spec.canvas, 1):
            raise ValueError(f"mnist_digit preprocessing needs a {spec.canvas}x{spec.canvas}x1 input")
        hwc = mnist_digit_tensor(image, spec)
    elif isinstance(spec, ImageNetPreprocessing):
        hwc = imagenet_tensor(image, spec, (height, width), channels)
    else:  # pragma: no cover - the manifest's discriminated union admits nothing else
        raise TypeError(f"unknown preprocessing {spec!r}")
    batch = hwc[np.newaxis]
    if manifest.input.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)
