"""HEIC and AVIF: the formats phones send, with their decoders loaded only when one arrives.

Both are ISO base media files (an ``ftyp`` box naming the brand, then ``meta`` and ``mdat``).
AVIF is decoded by Pillow itself (``PIL.AvifImagePlugin``, Pillow >= 11.3 built with libavif);
HEIC (HEVC-coded, iPhone's default since iOS 11) needs ``pi-heif``, the decode-only build of
pillow-heif, a binding of libheif + libde265 (https://pypi.org/project/pi-heif/,
https://pillow-heif.readthedocs.io); pillow-heif itself also bundles the x265 encoder, 27.4 MB
instead of 4.1 MB in the Lambda package. Importing it still costs ~0.1 s, so it is imported
and registered with Pillow on the first HEIC only; requests with other formats never load it.

Both plugins report the image size from the header, so the caller's pixel limit is checked
before any pixel is decoded. libheif applies the HEIF rotation/mirror boxes (``irot``/``imir``)
while decoding and pi-heif then resets the EXIF orientation to 1; Pillow's AVIF plugin does
the same for AVIF. ``ImageOps.exif_transpose`` afterwards is therefore a no-op, not a second
rotation.
"""

from __future__ import annotations

import logging
import threading

from PIL import Image

log = logging.getLogger(__name__)

HEIF = "HEIF"  # pi-heif's Pillow format name (HEIC files included)
AVIF = "AVIF"  # Pillow's own AVIF plugin

# ftyp brands (ISO/IEC 23008-12 for HEIF/HEIC, AV1 Image File Format spec for AVIF).
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})  # "some HEIF image": the compatible brands tell which

_lock = threading.Lock()
_heif_registered = False


def container_format(data: bytes) -> str | None:
    """``"HEIF"`` or ``"AVIF"`` when ``data`` starts with such an ``ftyp`` box, else ``None``.

    Reads only the ``ftyp`` box: the major brand, and for the generic ``mif1``/``msf1`` brands
    the compatible-brand list (AVIF files list ``avif``).
    """
    if data[4:8] != b"ftyp":
        return None
    major = data[8:12]
    if major in _AVIF_BRANDS:
        return AVIF
    if major in _HEIC_BRANDS:
        return HEIF
    if major in _GENERIC_BRANDS:
        box_size = int.from_bytes(data[0:4], "big")
        compatible = data[16 : min(box_size, 256)]
        brands = {compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)}
        return AVIF if brands & _AVIF_BRANDS else HEIF
    return None


def formats_for(data: bytes, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The Pillow formats ``Image.open`` should try for ``data``, out of ``allowed``.

    Loads the HEIF or AVIF plugin when ``data`` is that container and it is not loaded yet.
    HEIF/AVIF are left out while their plugin is not registered: ``Image.open`` raises
    ``KeyError`` for a format name it does not know, which would turn a bad upload into a 500.
    """
    kind = container_format(data)
    if kind == HEIF:
        _register_heif()
    elif kind == AVIF:
        _load_avif()
    return tuple(f for f in allowed if f not in (HEIF, AVIF) or f in Image.OPEN)


def _register_heif() -> None:
    global _heif_registered
    if _heif_registered:
        return
    with _lock:
        if _heif_registered:
            return
        try:
            import pi_heif
        except ImportError:  # not installed (a trimmed package): HEIC stays a 415
            log.warning("pi-heif is not installed; HEIC images are refused")
            return
        # Thumbnails, depth maps and auxiliary images are never used to classify.
        pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
        _heif_registered = True


def _load_avif() -> None:
    if AVIF not in Image.OPEN:
        # Registers the plugin; without the libavif codec it refuses to open (a 415).
        from PIL import AvifImagePlugin  # noqa: F401
