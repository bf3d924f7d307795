"""Training-time augmentation for the digit CNN that matches phone photos (``--augment photo``).

The service reads a photographed digit through ``service.images.preprocessing.digits``; the model
should train on what that produces from photos, not only on clean MNIST. Per batch of
preprocessed MNIST digits (float32 (B, 28, 28, 1), light ink on black):

- ``PHOTO_FRACTION`` of the digits are drawn as small photos: the digit scaled 1.5-3.5x, its
  strokes thinned or thickened, rotated up to +-15 degrees, in a blue, black, red or pencil-grey
  pen on tinted paper under a lighting gradient, blurred, with sensor noise, and then passed
  through the service's own ``mnist_digit_tensor``, exactly as an upload is served;
- the others get MNIST-scale jitter: rotation up to +-12 degrees, a scale of 0.9-1.1, a shift
  of up to 2 px, and now and then thinner or thicker strokes (3x3 min / max filter) or blur.

Seeded by the build's generator (``recipe.seed``), so a build is reproducible. Cost: a few ms
per photo-drawn digit on one core, about 0.1 s per batch of 128 at 0.25.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from service.images.preprocessing import mnist_digit_tensor
from service.manifest import MnistDigitPreprocessing

from .recipe import Augmentation

PHOTO_FRACTION = 0.25
_PENS = np.array([(25, 25, 30), (25, 45, 150), (185, 25, 35), (95, 95, 100)], dtype=np.float32) / 255.0
_PAPERS = np.array(
    [(245, 245, 242), (240, 232, 210), (250, 240, 165), (215, 230, 245), (205, 205, 205)], dtype=np.float32
)
_SPEC = MnistDigitPreprocessing()

DESCRIPTION = (
    f"photo augmentation (convert/digit_augment.py): {PHOTO_FRACTION:.0%} of each batch drawn as a "
    "small photo (1.5-3.5x scale in a frame 1.3-2x its size, strokes thinned/thickened, rotation "
    "+-15 deg, blue/black/red/pencil pen, tinted paper, lighting gradient up to 45 %, Gaussian blur "
    "0-1.5 px, noise sigma 2-10) and re-read through the service's mnist_digit preprocessing; the "
    "rest jittered (rotation +-12 deg, scale 0.9-1.1, shift +-2 px, 3x3 min/max stroke filter with "
    "p=0.15 each, 3-tap blur sigma 0.45-0.7 px with p=0.2)"
)


def photo_augmentation() -> Augmentation:
    """The ``Augmentation`` for ``DigitRecipe.augment``."""
    return Augmentation(DESCRIPTION, augment_batch)


def augment_batch(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 (B, 28, 28, 1) in [0, 1] -> augmented float32 (B, 28, 28, 1) in [0, 1]."""
    out = np.empty_like(batch, dtype=np.float32)
    for i, image in enumerate(batch[..., 0]):
        if rng.random() < PHOTO_FRACTION:
            out[i, ..., 0] = mnist_digit_tensor(as_photo(image, rng), _SPEC)[..., 0]
        else:
            out[i, ..., 0] = jitter(image, rng)
    return out


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small affine jitter and stroke-width change of one (28, 28) digit."""
    digit = Image.fromarray(np.asarray(image, dtype=np.float32), "F")
    angle = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.9, 1.1)
    dx, dy = rng.uniform(-2, 2, size=2)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    centre = 13.5
    # Inverse map (output -> input) about the centre, as Image.transform expects.
    matrix = (
        cos,
        sin,
        centre - cos * (centre + dx) - sin * (centre + dy),
        -sin,
        cos,
        centre + sin * (centre + dx) - cos * (centre + dy),
    )
    digit = digit.transform((28, 28), Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR)
    stroke = rng.random()
    if stroke < 0.15:
        digit = digit.filter(ImageFilter.MaxFilter(3))
    elif stroke < 0.3:
        digit = digit.filter(ImageFilter.MinFilter(3))
    pixels = np.asarray(digit, dtype=np.float32)
    if rng.random() < 0.2:  # out of focus: separable [w, 1 - 2w, w] kernel, sigma ~0.45-0.7 px
        w = rng.uniform(0.1, 0.25)
        for axis in (0, 1):
            pixels = (1 - 2 * w) * pixels + w * (np.roll(pixels, 1, axis) + np.roll(pixels, -1, axis))
    return np.clip(pixels, 0.0, 1.0)


def as_photo(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One (28, 28) digit in [0, 1] drawn as a small RGB photo of a pen on paper."""
    scale = rng.uniform(1.5, 3.5)
    size = int(round(28 * scale))
    ink = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    radius = int(rng.choice([-1, 0, 0, 1, 2]) * scale / 2)
    if radius:
        kernel = 2 * abs(radius) + 1
        ink = ink.filter(ImageFilter.MaxFilter(kernel) if radius > 0 else ImageFilter.MinFilter(kernel))
    ink = ink.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BICUBIC)
    blur = rng.uniform(0.0, 1.5) * scale / 2
    if blur > 0.3:
        ink = ink.filter(ImageFilter.GaussianBlur(blur))
    alpha = np.asarray(ink, dtype=np.float32)[..., np.newaxis] / 255.0
    pen = _PENS[rng.integers(len(_PENS))]
    if pen[0] == _PENS[3][0]:  # pencil: lighter, grainy
        alpha = alpha * rng.uniform(0.45, 0.9, size=alpha.shape).astype(np.float32) * rng.uniform(0.6, 0.85)
    # The digit sits off-centre in a frame 1.3-2x its size.
    frame = int(size * rng.uniform(1.3, 2.0))
    top, left = rng.integers(0, frame - size + 1, size=2)
    ys, xs = np.mgrid[0:frame, 0:frame].astype(np.float32) / frame
    theta = rng.uniform(0, 2 * np.pi)
    light = 1.0 - rng.uniform(0.0, 0.45) * (np.cos(theta) * xs + np.sin(theta) * ys + 1.0) / 2.0
    photo = np.empty((frame, frame, 3), dtype=np.float32)
    photo[:] = _PAPERS[rng.integers(len(_PAPERS))]
    photo[top : top + size, left : left + size] *= 1.0 - alpha * (1.0 - pen)
    photo *= light[..., np.newaxis] * rng.uniform(0.85, 1.0)
    photo += rng.normal(0.0, rng.uniform(2.0, 10.0), size=(frame, frame, 1)).astype(np.float32)
    return Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8), "RGB")
