"""The general ``image`` preprocessing: each formula against an independent reference on real
photos, the ImageNet modes as cases of it, and old ``imagenet`` manifests still serving.

References: ``keras.utils.load_img`` (Pillow resize; ``color_mode="grayscale"``) then the
formula in float64 numpy, and Keras's ``preprocess_input`` for the three ImageNet modes.
Bounds are float32 rounding of values of magnitude <= 152 (caffe): 1e-4 absolute.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from service.engine.contract import ContractError, _check_preprocessing
from service.images.preprocessing import preprocess
from service.images.preprocessing.image import image_tensor
from service.manifest import IMAGE_PRESETS, ImageNetPreprocessing, ImagePreprocessing, Manifest
from tests.harness.paths import CATS_DOGS_DIR, IMAGENET_VAL

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data
keras = pytest.importorskip("keras")

PHOTOS = sorted(IMAGENET_VAL.glob("*.JPEG"))[:3] + sorted((CATS_DOGS_DIR / "cats").glob("*.jpg"))[:3]
ATOL = 1e-4  # float32 rounding of (pixel x scale - mean) / std, |values| <= 152


def _loaded(path, size, grayscale=False) -> np.ndarray:
    mode = "grayscale" if grayscale else "rgb"
    image = keras.utils.load_img(path, target_size=size, interpolation="bilinear", color_mode=mode)
    pixels = np.asarray(image, dtype=np.float64)
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def _manifest(preprocessing: dict, shape: list, layout: str = "NHWC") -> Manifest:
    return Manifest.model_validate(
        {
            "name": "m",
            "version": "0",
            "file": "m.onnx",
            "sha256": "0" * 64,
            "size_bytes": 1,
            "labels": ["a", "b"],
            "input": {"name": "x", "shape": shape, "layout": layout},
            "output": {"name": "y", "kind": "sigmoid"},
            "preprocessing": preprocessing,
            "weights": "trained",
        }
    )


def test_scale_1_255_is_the_tutorials_rescaling():
    """``Rescaling(1./255)`` on ``load_img`` pixels (the cats-vs-dogs and digit tutorials)."""
    spec = ImagePreprocessing(scale=1 / 255)
    for path in PHOTOS:
        ours = image_tensor(Image.open(path), spec, (150, 150), 3)
        assert ours.shape == (150, 150, 3) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, _loaded(path, (150, 150)) / 255.0, rtol=0, atol=1e-6)


def test_greyscale_is_load_img_grayscale():
    """Luma first, then the resize. (Targets under 1/3 of the photo differ from ``load_img`` by
    Pillow's ``reducing_gap`` box pre-reduction, so this compares 227-px photos at 96 px.)"""
    spec = ImagePreprocessing(scale=1.0, mean=(127.5,), std=(127.5,))
    for path in PHOTOS[:3]:
        ours = image_tensor(Image.open(path), spec, (96, 96), 1)
        assert ours.shape == (96, 96, 1)
        reference = (_loaded(path, (96, 96), grayscale=True) - 127.5) / 127.5
        np.testing.assert_allclose(ours, reference, rtol=0, atol=ATOL)


def test_per_channel_mean_std_bgr_and_nchw():
    """BGR order, per-channel mean/std (listed in the model's channel order), planar output."""
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 0.2)
    spec = ImagePreprocessing(scale=1 / 255, mean=mean, std=std, channel_order="BGR")
    for path in PHOTOS:
        nhwc = image_tensor(Image.open(path), spec, (96, 128), 3, "NHWC")
        nchw = image_tensor(Image.open(path), spec, (96, 128), 3, "NCHW")
        assert nchw.shape == (3, 96, 128) and nchw.flags.c_contiguous
        np.testing.assert_array_equal(nchw, nhwc.transpose(2, 0, 1))
        reference = (_loaded(path, (96, 128))[..., ::-1] / 255.0 - np.array(mean)) / np.array(std)
        np.testing.assert_allclose(nhwc, reference, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    ("mode", "module"), [("tf", "mobilenet_v2"), ("caffe", "resnet50"), ("torch", "densenet")]
)
def test_imagenet_modes_are_presets_of_image(mode, module):
    """Each ``imagenet`` mode = the ``image`` preset of the same name = Keras's preprocess_input."""
    preset = {"tf": "keras-tf", "caffe": "keras-caffe", "torch": "torch"}[mode]
    assert ImageNetPreprocessing(mode=mode).as_image() == ImagePreprocessing(**IMAGE_PRESETS[preset])
    old = _manifest({"kind": "imagenet", "mode": mode}, [None, 224, 224, 3])
    new = _manifest({"kind": "image", **IMAGE_PRESETS[preset]}, [None, 224, 224, 3])
    for path in PHOTOS:
        served_old, served_new = preprocess(Image.open(path), old), preprocess(Image.open(path), new)
        np.testing.assert_array_equal(served_old, served_new)
        keras_input = getattr(keras.applications, module).preprocess_input(_loaded(path, (224, 224))[None])
        np.testing.assert_allclose(served_new, keras_input, rtol=0, atol=ATOL)


def test_published_imagenet_manifest_keeps_loading(tmp_path):
    """A manifest as ``keras-app`` wrote it before ``image`` existed loads and round-trips."""
    written = _manifest({"kind": "imagenet", "mode": "caffe", "resize_shorter": 256}, [None, 224, 224, 3])
    text = written.model_dump_json()
    assert json.loads(text)["preprocessing"] == {
        "kind": "imagenet",
        "mode": "caffe",
        "resize_shorter": 256,
        "resample": "bilinear",
    }
    again = Manifest.model_validate_json(text)
    assert isinstance(again.preprocessing, ImageNetPreprocessing)
    assert again.preprocessing.as_image().channel_order == "BGR"


def test_image_manifest_round_trips_as_json():
    manifest = _manifest(
        {"kind": "image", "scale": 1 / 255, "resize_shorter": 160}, [None, 3, 150, 150], "NCHW"
    )
    again = Manifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest and isinstance(again.preprocessing, ImagePreprocessing)
    assert preprocess(Image.open(PHOTOS[0]), again).shape == (1, 3, 150, 150)


@pytest.mark.parametrize(
    ("preprocessing", "shape", "message"),
    [
        ({"kind": "image"}, [None, 32, 32, 2], r"1 \(grey\) or 3 \(colour\) channels, not 2"),
        (
            {"kind": "image", "mean": [0.4, 0.5, 0.6]},
            [None, 28, 28, 1],
            "3 mean/std values but the input has 1",
        ),
    ],
)
def test_contract_refuses_what_image_cannot_make(preprocessing, shape, message):
    with pytest.raises(ContractError, match=message):
        _check_preprocessing(_manifest(preprocessing, shape))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mean": [1, 2]}, "mean needs 1 value or 3"),
        ({"std": [0.0]}, "std values must be > 0"),
        ({"scale": 0}, "greater than 0"),
    ],
)
def test_manifest_refuses_bad_image_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        ImagePreprocessing(**fields)
