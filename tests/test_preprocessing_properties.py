"""Property tests (hypothesis): any valid image, any size and mode, becomes a finite tensor of
the shape and dtype the manifest declares, for every preprocessing the manifest can name.

Images are drawn directly as Pillow images and also round-tripped through an accepted file
format and ``decode_image`` (the serving path). Pixel values include the extremes; 32-bit
float images include NaN and infinities, which a TIFF can carry.
"""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from service.images.decode import decode_image
from service.images.preprocessing import preprocess
from service.manifest import Manifest

# Modes Pillow's decoders produce from the accepted formats. (The premultiplied "La"/"RGBa"
# are internal to Pillow's resampling; no decoder returns them, so they are not uploads.)
EIGHT_BIT_MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "RGBX"]
WIDE_MODES = ["I;16", "I", "F"]
# The accepted formats that can store each mode as-is (for the decode_image round trip).
FORMATS_FOR_MODE = {
    "1": ["PNG", "TIFF", "BMP"],
    "L": ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"],
    "P": ["GIF", "PNG", "BMP", "TIFF"],
    "RGB": ["JPEG", "PNG", "WEBP", "BMP", "TIFF"],
    "RGBA": ["PNG", "WEBP", "TIFF"],
    "LA": ["PNG", "TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "YCbCr": ["TIFF"],
    "RGBX": ["TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
}


def _manifest(preprocessing: dict, shape: list, layout: str = "NHWC", labels: int = 10) -> Manifest:
    return Manifest.model_validate(
        {
            "name": "prop",
            "version": "0",
            "file": "m.onnx",
            "sha256": "0" * 64,
            "size_bytes": 1,
            "labels": [str(i) for i in range(labels)],
            "input": {"name": "x", "shape": shape, "layout": layout},
            "output": {"name": "y", "kind": "softmax"},
            "preprocessing": preprocessing,
            "weights": "random",
        }
    )


MANIFESTS = [
    _manifest({"kind": "mnist_digit"}, [None, 28, 28, 1]),
    _manifest({"kind": "mnist_digit", "box": 16, "canvas": 24, "resample": "bilinear"}, [1, 24, 24, 1]),
    _manifest({"kind": "imagenet", "mode": "tf"}, [None, 224, 224, 3]),
    _manifest({"kind": "imagenet", "mode": "caffe", "resize_shorter": 256}, [None, 224, 224, 3]),
    _manifest({"kind": "imagenet", "mode": "torch", "resize_shorter": 160}, [None, 3, 128, 128], "NCHW"),
    _manifest({"kind": "imagenet", "mode": "tf", "resample": "nearest"}, [None, 96, 160, 3]),
    _manifest({"kind": "image"}, [None, 150, 150, 3]),
    _manifest({"kind": "image", "scale": 1.0, "mean": [127.5], "std": [64.0]}, [None, 32, 48, 1]),
    _manifest(
        {
            "kind": "image",
            "mean": [0.5, 0.4, 0.3],
            "std": [0.2, 0.3, 0.25],
            "channel_order": "BGR",
            "resize_shorter": 80,
        },
        [None, 3, 64, 64],
        "NCHW",
    ),  # fmt: skip
]


def _expected_shape(manifest: Manifest) -> tuple[int, ...]:
    return (1, *manifest.input.shape[1:])


sides = st.integers(min_value=1, max_value=48)
# Occasionally extreme aspect ratios (1 x 600 and the like).
sizes = st.one_of(
    st.tuples(sides, sides),
    st.tuples(st.integers(1, 3), st.integers(200, 600)),
    st.tuples(st.integers(200, 600), st.integers(1, 3)),
)


@st.composite
def images(draw: st.DrawFn) -> Image.Image:
    width, height = draw(sizes)
    mode = draw(st.sampled_from(EIGHT_BIT_MODES + WIDE_MODES))
    if mode == "F":
        floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
        pixels = draw(arrays(np.float32, (height, width), elements=floats))
        return Image.fromarray(pixels, "F")
    if mode in ("I;16", "I"):
        top = 65535 if mode == "I;16" else 2**31 - 1
        dtype = np.uint16 if mode == "I;16" else np.int32
        low = 0 if mode == "I;16" else -(2**31)
        pixels = draw(arrays(dtype, (height, width), elements=st.integers(low, top)))
        image = Image.fromarray(pixels)
        return image if mode == "I" else image.convert("I;16") if image.mode != "I;16" else image
    # A uniform fill plus a drawn patch keeps examples small while covering blank images,
    # full-contrast strokes and everything between.
    fill = draw(st.integers(0, 255))
    base = np.full((height, width, 4), fill, dtype=np.uint8)
    patch = draw(arrays(np.uint8, (min(height, 8), min(width, 8), 4)))
    top, left = draw(st.integers(0, height - patch.shape[0])), draw(st.integers(0, width - patch.shape[1]))
    base[top : top + patch.shape[0], left : left + patch.shape[1]] = patch
    return Image.fromarray(base, "RGBA").convert(mode)


def _check(tensor: np.ndarray, manifest: Manifest) -> None:
    assert tensor.shape == _expected_shape(manifest)
    assert tensor.dtype == np.float32
    assert np.isfinite(tensor).all()
    assert tensor.flags["C_CONTIGUOUS"]


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(image=images(), manifest=st.sampled_from(MANIFESTS))
def test_any_image_gives_a_finite_tensor_of_the_declared_shape(
    image: Image.Image, manifest: Manifest
) -> None:
    _check(preprocess(image, manifest), manifest)


@SETTINGS
@given(image=images(), manifest=st.sampled_from(MANIFESTS), data=st.data())
def test_any_encoded_image_decodes_to_a_finite_tensor(
    image: Image.Image, manifest: Manifest, data: st.DataObject
) -> None:
    if image.mode not in FORMATS_FOR_MODE:  # "PA": no accepted format writes it
        image = image.convert("RGBA")
    fmt = data.draw(st.sampled_from(FORMATS_FOR_MODE[image.mode]), label="format")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    decoded = decode_image(buffer.getvalue(), max_pixels=40_000_000)
    _check(preprocess(decoded, manifest), manifest)


@SETTINGS
@given(image=images())
def test_digit_tensor_stays_in_unit_range(image: Image.Image) -> None:
    tensor = preprocess(image, MANIFESTS[0])
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0


@SETTINGS
@given(image=images())
def test_imagenet_tf_tensor_stays_in_minus_one_to_one(image: Image.Image) -> None:
    tensor = preprocess(image, MANIFESTS[2])
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
