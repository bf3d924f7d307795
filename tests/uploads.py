"""Turn MNIST digits into what real uploads look like: dark ink on paper, big, off-centre."""

from __future__ import annotations

import numpy as np
from PIL import Image


def as_real_upload(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """uint8 (28, 28) MNIST digit -> RGB photo-like image.

    Dark ink on an off-white page, scaled up 3-8x, placed off-centre on a canvas of
    200-480 px per side, with a little paper noise.
    """
    scale = rng.uniform(3.0, 8.0)
    size = max(28, round(28 * scale))
    ink = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    width, height = int(rng.integers(max(200, size + 10), 480)), int(rng.integers(max(200, size + 10), 480))
    paper = rng.uniform(215, 250)
    ink_level = rng.uniform(10, 60)
    alpha = np.asarray(ink, dtype=np.float32) / 255.0
    canvas = np.full((height, width), paper, dtype=np.float32)
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    region = canvas[top : top + size, left : left + size]
    canvas[top : top + size, left : left + size] = region * (1 - alpha) + ink_level * alpha
    canvas += rng.normal(0, 3.0, canvas.shape)
    gray = np.clip(canvas, 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")
