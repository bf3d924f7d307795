"""The service's numpy + Pillow ImageNet preprocessing against Keras's own, on real photos.

Reference: ``keras.utils.load_img(path, target_size=..., interpolation=...)`` followed by each
family's ``keras.applications.<module>.preprocess_input`` (the classic tutorials' pipeline).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.images.preprocessing.imagenet import imagenet_tensor, resize_and_crop
from service.manifest import ImageNetPreprocessing
from tests.harness.paths import CATS_DOGS_DIR, IMAGENET_VAL

from .support import encode

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data

keras = pytest.importorskip("keras")
keras_apps = pytest.importorskip("convert.keras_apps")

VAL_DIR = IMAGENET_VAL


def _real_photos() -> list:
    # ImageNet val images are 227x227; the cats-vs-dogs originals come in many sizes and shapes.
    val = sorted(VAL_DIR.glob("*.JPEG"))[:6]
    pets = (
        sorted((CATS_DOGS_DIR / "cats").glob("*.jpg"))[:5]
        + sorted((CATS_DOGS_DIR / "dogs").glob("*.jpg"))[:5]
    )
    return val + pets


PHOTOS = _real_photos()


def _keras_reference(path, module: str, size: int, interpolation: str) -> np.ndarray:
    image = keras.utils.load_img(path, target_size=(size, size), interpolation=interpolation)
    pixels = np.asarray(image, dtype=np.float32).copy()
    return getattr(keras.applications, module).preprocess_input(pixels[np.newaxis])[0]


def test_photos_are_real_and_varied():
    sizes = {Image.open(p).size for p in PHOTOS}
    assert len(PHOTOS) == 16 and len(sizes) >= 5  # non-square originals included


@pytest.mark.parametrize("architecture", sorted(keras_apps.ARCHITECTURES))
def test_each_family_matches_keras_preprocess_input(architecture):
    """The mode recorded for every architecture reproduces its own preprocess_input."""
    arch = keras_apps.ARCHITECTURES[architecture]
    spec = keras_apps.preprocessing_for(architecture)
    assert spec.resize_shorter is None and spec.resample == "bilinear"
    for path in PHOTOS:
        ours = imagenet_tensor(Image.open(path), spec, (arch.size, arch.size), 3)
        reference = _keras_reference(path, arch.module, arch.size, "bilinear")
        assert ours.shape == reference.shape == (arch.size, arch.size, 3)
        assert ours.dtype == np.float32
        # float32 arithmetic in a different order: a few ulps at most (caffe values reach ~150).
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4, err_msg=str(path))


@pytest.mark.parametrize(
    "mode,module", [("tf", "mobilenet_v2"), ("caffe", "resnet50"), ("torch", "densenet")]
)
@pytest.mark.parametrize("resample", ["bicubic", "nearest", "lanczos"])
def test_every_mode_and_filter_matches_keras(mode, module, resample):
    spec = ImageNetPreprocessing(mode=mode, resample=resample)
    for path in PHOTOS[::3]:
        ours = imagenet_tensor(Image.open(path), spec, (224, 224), 3)
        np.testing.assert_allclose(ours, _keras_reference(path, module, 224, resample), rtol=0, atol=1e-4)


def test_caffe_mode_is_bgr_minus_mean_without_scaling():
    path = PHOTOS[0]
    spec = ImageNetPreprocessing(mode="caffe")
    ours = imagenet_tensor(Image.open(path), spec, (224, 224), 3)
    rgb = np.asarray(
        Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), np.float32
    )
    np.testing.assert_allclose(ours[..., 0] + 103.939, rgb[..., 2], atol=1e-4)  # B first
    np.testing.assert_allclose(ours[..., 2] + 123.68, rgb[..., 0], atol=1e-4)
    assert ours.min() < -100 and ours.max() > 100  # no scaling to a unit range


def test_resize_shorter_then_centre_crop_matches_keras_on_the_crop():
    """Shorter side -> 256, centre 224 crop, then the same numbers Keras gives for that crop."""
    spec = ImageNetPreprocessing(mode="tf", resize_shorter=256)
    for path in PHOTOS[6:]:
        image = Image.open(path)
        crop = resize_and_crop(image, (224, 224), 256, "bilinear")
        assert crop.size == (224, 224)
        scale = 256 / min(image.size)
        expected = (round(image.width * scale), round(image.height * scale))
        scaled = image.convert("RGB").resize(expected, Image.Resampling.BILINEAR)
        left, top = (expected[0] - 224) // 2, (expected[1] - 224) // 2
        np.testing.assert_array_equal(
            np.asarray(crop), np.asarray(scaled.crop((left, top, left + 224, top + 224)))
        )
        reference = keras.applications.mobilenet_v2.preprocess_input(np.asarray(crop, np.float32).copy())
        np.testing.assert_allclose(imagenet_tensor(image, spec, (224, 224), 3), reference, atol=1e-6)


def test_grayscale_and_transparent_uploads_become_rgb_like_keras():
    path = PHOTOS[7]
    for mode in ("L", "RGBA", "P"):
        converted = Image.open(io.BytesIO(encode(Image.open(path).convert(mode), "PNG")))
        ours = imagenet_tensor(converted, ImageNetPreprocessing(mode="tf"), (224, 224), 3)
        assert ours.shape == (224, 224, 3) and np.isfinite(ours).all()
        assert ours.min() >= -1.0 and ours.max() <= 1.0
