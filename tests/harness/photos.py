"""Phone-weight photos: 12 MP JPEGs made from real cats-vs-dogs photos (``../shared/data``).

Used by the upload tests and by the memory and upload-size benchmarks.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .paths import CATS_DOGS_DIR

PHONE_SIZE = (4032, 3024)


def phone_jpegs(count: int, seed: int = 0, noise: float = 4.0) -> list[bytes]:
    """``count`` distinct 12 MP JPEGs (quality 90) made from real cats-vs-dogs photos.

    Upscaling alone gives unrealistically smooth, small files; Gaussian noise (sigma 4 grey
    levels by default) brings them to the size of a phone camera's JPEG; ``noise=0`` skips it.
    """
    rng = np.random.default_rng(seed)
    photos = sorted((CATS_DOGS_DIR / "cats").glob("*.jpg"))[: count // 2 + 1]
    photos += sorted((CATS_DOGS_DIR / "dogs").glob("*.jpg"))[: count - len(photos)]
    out = []
    for path in photos[:count]:
        big = Image.open(path).convert("RGB").resize(PHONE_SIZE, Image.Resampling.BICUBIC)
        if noise:
            pixels = np.asarray(big, dtype=np.int16) + rng.normal(0, noise, (*PHONE_SIZE[::-1], 3)).astype(
                np.int16
            )
            big = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out
