"""Keras ImageNet preprocessing (manifests of kind ``imagenet``), served as a case of ``image``.

Matches ``keras.applications.imagenet_utils.preprocess_input`` (modes ``tf``, ``caffe``,
``torch``; https://github.com/keras-team/keras/blob/master/keras/src/applications/imagenet_utils.py)
applied after ``keras.utils.load_img``-style Pillow resizing of an 8-bit RGB image. Each mode is
the ``image`` preprocessing that ``ImageNetPreprocessing.as_image()`` returns (scale, mean, std
and channel order of ``service.manifest.IMAGE_PRESETS``). Tests check it against Keras's own
function on real photos.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from service.images.preprocessing import image as _image
from service.images.preprocessing.color import rgb_image
from service.images.preprocessing.image import image_tensor
from service.manifest import ImageNetPreprocessing

# Kept for callers of the ImageNet-only helpers; the numbers live in IMAGE_PRESETS.
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TORCH_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def resize_and_crop(
    image: Image.Image, size: tuple[int, int], resize_shorter: int | None, resample: str
) -> Image.Image:
    """RGB image of ``size`` = (height, width) (``service.images.preprocessing.image.resize_and_crop``
    of the image made RGB)."""
    return _image.resize_and_crop(rgb_image(image), size, resize_shorter, resample)


def imagenet_tensor(
    image: Image.Image, spec: ImageNetPreprocessing, size: tuple[int, int], channels: int
) -> np.ndarray:
    """float32 (height, width, 3) input for an ImageNet-style Keras model.

    Raises:
        ValueError: ``channels`` is not 3.
    """
    if channels != 3:
        raise ValueError(f"imagenet preprocessing needs a 3-channel input, model has {channels}")
    return image_tensor(image, spec.as_image(), size, 3, "NHWC")
