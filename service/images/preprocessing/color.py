"""Pixel-format normalisation shared by every preprocessing: any Pillow mode to float arrays."""

from __future__ import annotations

import numpy as np
from PIL import Image

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# ITU-R BT.601 luma weights, the ones Pillow's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def gray_float(image: Image.Image) -> np.ndarray:
    """Luminance in [0, 1] as float32 (H, W), keeping 16-bit precision for 16-bit images.

    32-bit float images ("F") are scaled by their own maximum (at least 1.0); NaN and
    infinities, which no camera produces, are treated as 0.
    """
    if image.mode not in _HIGH_BIT_DEPTH:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    values = np.asarray(image, dtype=np.float32)
    if image.mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        top = max(float(values.max(initial=0.0)), 1.0)
    else:
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
    return np.clip(values / top, 0.0, 1.0)


def rgb_image(image: Image.Image) -> Image.Image:
    """An 8-bit RGB Pillow image; transparency is composited over white, 16-bit is rescaled."""
    if image.mode in _HIGH_BIT_DEPTH:
        return Image.fromarray(np.round(gray_float(image) * 255.0).astype(np.uint8)).convert("RGB")
    if has_alpha(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def rgba_float(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """(luminance in [0, 1] of shape (H, W), alpha in [0, 1] of shape (H, W))."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    return rgba[..., :3] @ _LUMA, rgba[..., 3]
