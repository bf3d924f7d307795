"""Decode untrusted image bytes into a Pillow image, safely.

Limits: only the formats in ``ALLOWED_FORMATS`` are parsed; images over ``max_pixels`` are
refused from the header alone, before any pixel is decoded (decompression bombs); the first
frame of animated / multi-frame files is used; EXIF orientation is applied
(https://pillow.readthedocs.io/en/stable/reference/ImageOps.html#PIL.ImageOps.exif_transpose).

Decoding only what the model needs: given ``min_side``, a JPEG is decoded at the smallest DCT
scale (1/2, 1/4 or 1/8, libjpeg's ``scale_num/scale_denom`` through Pillow's ``Image.draft``,
https://pillow.readthedocs.io/en/stable/reference/Image.html#PIL.Image.Image.draft) that keeps
both sides >= ``min_side``. A 4032x3024 photo for a 224x224 model (``min_side`` 336) then
decodes at 1/8 to 504x378: 0.57 MB of RGB instead of 36.6 MB, and the resize that follows
starts from ~2x the model's input instead of ~14x. What no DCT scale skips is the entropy
(Huffman) decoding of the whole file, so the time left grows with the file's bytes.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import BadImage, PayloadTooLarge, UnsupportedImage
from service.images import allocator, heif

# Decoding photos on worker threads is what fragments glibc's heap (an arena per thread, a
# rising mmap threshold); tune it once, before any worker thread exists, and let Pillow reuse
# image blocks rather than map fresh pages for every image. See service.images.allocator.
allocator.limit_fragmentation()
allocator.reuse_image_blocks()

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", heif.HEIF, heif.AVIF)


def decode_image(data: bytes, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """Decode one image.

    Args:
        data: the encoded file, as uploaded.
        max_pixels: largest ``width * height`` accepted (checked on the header's full size,
            before any decoding or DCT scaling).
        min_side: the smallest side, in pixels, the caller needs (see
            ``service.images.preprocessing.decode_min_side``); a JPEG larger than that may be decoded
            at a reduced DCT scale, never below it on either side. ``None`` decodes at full size.

    Returns:
        A fully loaded, EXIF-oriented Pillow image of the first frame, in its original mode;
        with ``min_side``, a JPEG's sides may be its original ones divided by 2, 4 or 8
        (rounded up).

    Raises:
        BadImage: empty, truncated or corrupt data.
        UnsupportedImage: not an image, or a format outside ``ALLOWED_FORMATS``.
        PayloadTooLarge: more than ``max_pixels`` pixels.
    """
    if not data:
        raise BadImage("empty body: send an image file (multipart field 'file' or the raw bytes)")
    with warnings.catch_warnings():
        # Pillow's own bomb check warns below 2x its global limit; ours is explicit, below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=heif.formats_for(data, ALLOWED_FORMATS))
        except UnidentifiedImageError:
            sniffed = _sniff(data)
            if sniffed in ALLOWED_FORMATS:
                raise BadImage(f"{sniffed} data is corrupt and cannot be decoded") from None
            raise UnsupportedImage(_unidentified_detail(sniffed)) from None
        except Image.DecompressionBombError:
            raise PayloadTooLarge(f"image has too many pixels (limit {max_pixels})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadImage(f"corrupt {_sniff(data) or 'image'} header: {_short(exc)}") from None
        width, height = image.size
        if width * height > max_pixels:
            raise PayloadTooLarge(
                f"image is {width}x{height} = {width * height} pixels; limit is {max_pixels}"
            )
        if width == 0 or height == 0:
            raise BadImage(f"image has no pixels ({width}x{height})")
        try:
            image.seek(0)
            if min_side is not None:
                _draft(image, min_side)
            image.load()
            # In place: without an orientation tag, the default returns a copy of the frame,
            # whose fresh buffer costs page faults (benchmarks/http/http_sizes.py times large uploads).
            ImageOps.exif_transpose(image, in_place=True)
        except Image.DecompressionBombError:
            raise PayloadTooLarge(f"image has too many pixels (limit {max_pixels})") from None
        except RuntimeError as exc:  # Pillow's AVIF plugin: "Failed to decode frame 0: ..."
            raise BadImage(f"corrupt {image.format or 'image'} data: {_short(exc)}") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, ZeroDivisionError) as exc:
            # Pillow reports truncation as OSError("image file is truncated ...").
            fmt = image.format or "image"
            if "truncated" in str(exc):
                raise BadImage(f"{fmt} data is truncated") from None
            raise BadImage(f"corrupt {fmt} data: {_short(exc)}") from None
    return image


def _draft(image: Image.Image, min_side: int) -> None:
    """Let a JPEG decode at the smallest DCT scale that keeps both sides >= ``min_side``.

    A square request keeps the guarantee whichever way EXIF orientation later turns the image.
    The mode is kept (``None``): colour conversion stays with the preprocessing. Formats other
    than JPEG/MPO ignore ``draft``.
    """
    image.draft(None, (min_side, min_side))


_SIGNATURES = {
    b"%PDF": "PDF",
    b"\x00\x00\x01\x00": "ICO",
    b"8BPS": "PSD",
    b"%!PS": "PostScript",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    b"\xff\x0a": "JPEG XL",
    b"<svg": "SVG",
    b"<?xml": "XML/SVG",
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"RIFF": "WEBP",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _sniff(data: bytes) -> str | None:
    head = data[:16]
    return heif.container_format(data) or next(
        (name for magic, name in _SIGNATURES.items() if head.startswith(magic)), None
    )


def _unidentified_detail(sniffed: str | None) -> str:
    allowed = ", ".join(ALLOWED_FORMATS)
    if sniffed:
        return f"{sniffed} is not a supported image format; send one of: {allowed}"
    return f"body is not a recognised image; send one of: {allowed}"


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
