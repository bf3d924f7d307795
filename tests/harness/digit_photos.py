"""Phone photos of handwritten digits, rendered from MNIST digits: seeded and deterministic.

A new user photographs a digit written on paper. The photo differs from an MNIST upload in
every way this module varies, each drawn independently per photo and recorded in its
``conditions`` so accuracy can be reported per condition:

- pen: blue, black, red ballpoint or grey pencil (pencil: lighter, grainy strokes);
- paper: white, cream, yellow, light blue or light grey;
- stroke: thinner or thicker than MNIST's (erosion / dilation of the upscaled digit);
- lighting: a linear gradient (up to 45 % darker on one side), a vignette, or a soft-edged shadow
  (a phone's, up to 45 % darker), or even light;
- rotation up to +-15 degrees; digit height 3 %-40 % of the frame's shorter side, anywhere in the
  frame (off-centre); frames from 200 px to 2.6 MP, and 12 MP (4032 x 3024) ones;
- optical blur, sensor noise (per channel), and JPEG quality 60-95.

Digits smaller than ``MIN_DIGIT_PX`` pixels are not drawn: the smallest fractions come with the
larger frames, as on a phone (a 3 % digit needs a frame of about 1000 px or more).

Use MNIST *test* digits for the test set only; tune on *train* digits rendered the same way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

PENS = {  # sRGB of the ink where it is fully laid down
    "black": (25, 25, 30),
    "blue": (25, 45, 150),
    "red": (185, 25, 35),
    "pencil": (95, 95, 100),
}
PAPERS = {
    "white": (245, 245, 242),
    "cream": (240, 232, 210),
    "yellow": (250, 240, 165),
    "light blue": (215, 230, 245),
    "grey": (205, 205, 205),
}
LIGHTING = ("even", "gradient", "vignette", "shadow")
MIN_DIGIT_PX = 28
MAX_SHORT_SIDE = 1200  # other than the 12 MP frames: up to 1200 x 2133 (2.6 MP)
TWELVE_MP = (4032, 3024)


@dataclass(frozen=True)
class DigitPhoto:
    """One rendered photo: JPEG bytes, its label, and what was varied (for per-condition tables)."""

    jpeg: bytes
    label: int
    size: tuple[int, int]
    conditions: dict[str, str] = field(default_factory=dict)


def render_photos(
    digits: np.ndarray, labels: np.ndarray, seed: int, *, twelve_mp: int = 0
) -> list[DigitPhoto]:
    """Render one photo per digit.

    Args:
        digits: uint8 (N, 28, 28) MNIST digits (light ink on black).
        labels: (N,) labels.
        seed: seeds every random choice; the same arguments give byte-identical photos.
        twelve_mp: the first ``twelve_mp`` photos are 4032 x 3024 frames (slow to draw and
            encode: ~1 s each); the others have a shorter side of 200-1200 px.
    """
    rng = np.random.default_rng(seed)
    return [
        render_photo(digit, int(label), rng, frame=TWELVE_MP if i < twelve_mp else None)
        for i, (digit, label) in enumerate(zip(digits, labels, strict=True))
    ]


def render_photo(
    digit: np.ndarray, label: int, rng: np.random.Generator, frame: tuple[int, int] | None = None
) -> DigitPhoto:
    """One MNIST digit as a phone photo (see the module docstring); ``frame`` fixes (W, H)."""
    pen = str(rng.choice(list(PENS)))
    paper = str(rng.choice(list(PAPERS)))
    lighting = str(rng.choice(LIGHTING))
    fraction = float(np.exp(rng.uniform(np.log(0.03), np.log(0.40))))
    if frame is None:
        short = int(
            rng.integers(
                min(max(200, int(np.ceil(MIN_DIGIT_PX / fraction))), MAX_SHORT_SIDE), MAX_SHORT_SIDE + 1
            )
        )
        fraction = max(fraction, MIN_DIGIT_PX / short)
        aspect = float(rng.choice([1.0, 4 / 3, 3 / 2, 16 / 9]))
        long = int(round(short * aspect))
        width, height = (long, short) if rng.random() < 0.6 else (short, long)
    else:
        width, height = frame
        fraction = max(fraction, MIN_DIGIT_PX / min(frame))
    angle = float(rng.uniform(-15, 15))
    stroke = float(rng.choice([-1, 0, 0, 1, 2]))  # erosion/dilation in MNIST pixels x 0.5
    blur = float(rng.uniform(0.0, 1.5))  # in MNIST pixels (scaled with the digit)
    noise = float(rng.uniform(2.0, 10.0))  # sensor noise sigma, 0-255 levels
    quality = int(rng.integers(60, 96))

    digit_px = fraction * min(width, height)
    alpha = _ink_alpha(digit, digit_px, angle, stroke, blur, rng, pencil=pen == "pencil")
    h, w = alpha.shape
    top = int(rng.integers(0, max(1, height - h)))
    left = int(rng.integers(0, max(1, width - w)))

    light = _lighting(lighting, (width, height), rng)
    ink = np.array(PENS[pen], dtype=np.float32) / 255.0
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = np.array(PAPERS[paper], dtype=np.float32)
    region = image[top : top + h, left : left + w]
    a = alpha[: region.shape[0], : region.shape[1], np.newaxis]
    region *= 1.0 - a * (1.0 - ink)  # ink absorbs: paper colour times the pen's transmission
    image *= light[..., np.newaxis]
    image += noise * rng.standard_normal((height, width, 1), dtype=np.float32)  # luminance noise
    image += (noise / 2) * rng.standard_normal(image.shape, dtype=np.float32)  # chroma noise
    photo = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=quality)
    conditions = {
        "pen": pen,
        "paper": paper,
        "lighting": lighting,
        "digit size": _bucket(fraction, [(0.06, "3-6 %"), (0.15, "6-15 %"), (1.0, "15-40 %")]),
        "frame": _bucket(
            width * height / 1e6, [(0.5, "< 0.5 MP"), (2.0, "0.5-2 MP"), (10.0, "2-10 MP"), (99, "12 MP")]
        ),
        "rotation": _bucket(abs(angle), [(5, "under 5 deg"), (10, "5-10 deg"), (16, "10-15 deg")]),
        "stroke": {-1.0: "thin", 0.0: "as MNIST", 1.0: "thick", 2.0: "very thick"}[stroke],
        "blur": _bucket(blur, [(0.5, "sharp"), (1.0, "slight"), (2.0, "blurred")]),
        "noise": _bucket(noise, [(5.0, "low"), (8.0, "medium"), (11.0, "high")]),
        "jpeg quality": _bucket(quality, [(75, "60-74"), (85, "75-84"), (96, "85-95")]),
    }
    return DigitPhoto(buffer.getvalue(), label, (width, height), conditions)


def _ink_alpha(
    digit: np.ndarray,
    digit_px: float,
    angle: float,
    stroke: float,
    blur: float,
    rng: np.random.Generator,
    pencil: bool,
) -> np.ndarray:
    """Ink coverage in [0, 1], float32 (h, w): the digit scaled so its box is ``digit_px`` tall."""
    rows = np.nonzero(digit.max(axis=1) > 30)[0]
    box_height = (rows.max() - rows.min() + 1) if rows.size else 20
    scale = float(digit_px / box_height)
    size = max(8, int(round(28 * scale)))
    big = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    radius = int(round(abs(stroke) * scale / 2))
    if radius:
        kernel = 2 * radius + 1
        big = big.filter(ImageFilter.MaxFilter(kernel) if stroke > 0 else ImageFilter.MinFilter(kernel))
    big = big.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    if blur > 0:
        big = big.filter(ImageFilter.GaussianBlur(blur * scale / 2))
    alpha = np.asarray(big, dtype=np.float32) / 255.0
    if pencil:  # graphite: lighter and grainy
        grain = rng.uniform(0.45, 0.9, size=alpha.shape).astype(np.float32)
        alpha = alpha * grain * float(rng.uniform(0.6, 0.85))
    return np.clip(alpha, 0.0, 1.0)


def _lighting(kind: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Multiplicative illumination, float32 (H, W) in (0, 1]: drawn at 64 px, scaled up."""
    width, height = size
    small_w, small_h = 64, max(2, round(64 * height / width))
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    ys /= small_h - 1
    xs /= small_w - 1
    if kind == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(theta) * (xs - 0.5) + np.sin(theta) * (ys - 0.5)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        light = 1.0 - rng.uniform(0.2, 0.45) * ramp
    elif kind == "vignette":
        r2 = (xs - rng.uniform(0.3, 0.7)) ** 2 + (ys - rng.uniform(0.3, 0.7)) ** 2
        light = 1.0 - rng.uniform(0.2, 0.4) * np.clip(r2 / 0.5, 0, 1)
    elif kind == "shadow":  # a soft-edged half-plane, like a phone or hand between lamp and page
        theta = rng.uniform(0, 2 * np.pi)
        edge = np.cos(theta) * (xs - 0.5) + np.sin(theta) * (ys - 0.5) - rng.uniform(-0.3, 0.3)
        softness = rng.uniform(0.03, 0.12)
        inside = 1.0 / (1.0 + np.exp(-edge / softness))
        light = 1.0 - rng.uniform(0.25, 0.45) * inside
    else:
        light = np.full_like(xs, 1.0)
    light = light * rng.uniform(0.85, 1.0)  # exposure
    field = Image.fromarray(light.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(field, dtype=np.float32)


def _bucket(value: float, edges: list[tuple[float, str]]) -> str:
    for upper, name in edges:
        if value < upper:
            return name
    return edges[-1][1]
