"""Harder digit photos than ``benchmarks.digit_photos``, and photos of whole numbers: seeded.

Scenes (issue 18), each recorded in the photo's ``conditions["scene"]``:

- ``sheet on desk``: a sheet of paper lying on a desk (wood, light wood, grey, dark, green),
  rotated up to +-10 degrees, covering 50-90 % of the frame, with a soft drop shadow on the desk
  along two of its edges; the digit 4-15 % of the frame's shorter side, inside the sheet;
- ``ruled paper``: notebook paper filling the frame, light blue rules and a red margin line,
  the digit written across the rules (near the margin, sometimes crossing it);
- ``squared paper``: light blue or grey squares, the digit across the lines;
- ``drawing app``: a portrait phone screenshot (1080 x 2340 or 720 x 1600) of a drawing app: a
  white or coloured brush on black, a status bar with small light icons at the top.

Pens, lighting (a gradient, vignette, shadow or even), noise, blur and JPEG quality vary as in
``benchmarks.digit_photos`` (except the screenshots, which are PNG and clean).

``render_number_photo`` writes 2-5 MNIST digits in a row on paper (spacing from overlapping to
wide gaps, a wandering baseline, per-digit size changes) and returns the number and the digits'
boxes in the photo's pixels.

Use MNIST *test* digits for the test sets only; tune on *train* digits rendered the same way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tests.harness.digit_photos import LIGHTING, PAPERS, PENS, DigitPhoto, _bucket, _ink_alpha, _lighting

SCENES = ("sheet on desk", "ruled paper", "squared paper", "drawing app")
DESKS = {  # base colour and how strong the texture is (relative)
    "wood": ((140, 92, 55), 0.16),
    "light wood": ((196, 160, 112), 0.12),
    "grey": ((135, 135, 138), 0.05),
    "dark": ((45, 42, 40), 0.10),
    "green": ((52, 96, 70), 0.06),
}
BRUSHES = {"white": (255, 255, 255), "yellow": (255, 220, 40), "cyan": (60, 220, 255), "pink": (255, 90, 170)}
RULE_INK = (135, 170, 220)
MARGIN_INK = (215, 80, 90)


@dataclass(frozen=True)
class NumberPhoto:
    """A photo of a number: JPEG bytes, the digits as a string, each digit's box (left, top,
    right, bottom) in pixels, and what was varied."""

    jpeg: bytes
    number: str
    boxes: list[tuple[int, int, int, int]]
    size: tuple[int, int]
    conditions: dict[str, str] = field(default_factory=dict)


def render_scenes(digits: np.ndarray, labels: np.ndarray, seed: int) -> list[DigitPhoto]:
    """One photo per digit, the scenes taken in turn (``SCENES`` order); deterministic."""
    rng = np.random.default_rng(seed)
    return [
        render_scene(digit, int(label), SCENES[i % len(SCENES)], rng)
        for i, (digit, label) in enumerate(zip(digits, labels, strict=True))
    ]


def render_scene(digit: np.ndarray, label: int, scene: str, rng: np.random.Generator) -> DigitPhoto:
    """One MNIST digit (uint8 28x28, light on black) in ``scene`` (see the module docstring)."""
    if scene == "drawing app":
        return _drawing_app(digit, label, rng)
    pen = str(rng.choice(list(PENS)))
    lighting = str(rng.choice(LIGHTING))
    short = int(rng.integers(480, 1201))
    aspect = float(rng.choice([4 / 3, 3 / 2, 16 / 9]))
    width, height = (round(short * aspect), short) if rng.random() < 0.6 else (short, round(short * aspect))
    angle = float(rng.uniform(-10, 10))
    stroke = float(rng.choice([-1, 0, 0, 1, 2]))
    blur = float(rng.uniform(0.0, 1.2))
    noise = float(rng.uniform(2.0, 8.0))
    quality = int(rng.integers(65, 96))
    conditions = {"scene": scene, "pen": pen, "lighting": lighting}

    if scene == "sheet on desk":
        desk = str(rng.choice(list(DESKS)))
        paper = str(rng.choice(["white", "white", "cream", "light blue", "grey"]))
        cover = float(rng.uniform(0.5, 0.9))
        image, inside = _desk_with_sheet((width, height), desk, PAPERS[paper], cover, angle, rng)
        fraction = float(rng.uniform(0.04, 0.15))
        conditions |= {
            "desk": desk,
            "sheet cover": _bucket(cover, [(0.7, "50-70 %"), (0.95, "70-90 %")]),
        }
    else:
        paper = str(rng.choice(["white", "white", "cream", "yellow"]))
        image = np.empty((height, width, 3), dtype=np.float32)
        image[:] = np.array(PAPERS[paper], dtype=np.float32)
        inside = (0.0, 0.0, float(width), float(height))
        fraction = float(rng.uniform(0.08, 0.3))
        spacing = _draw_lines(image, scene, rng, angle)
        # Written on the lines: the digit is 1.5-3 rule spacings tall, so it crosses 1-3 rules.
        fraction = min(max(fraction, 1.5 * spacing / min(width, height)), 3.0 * spacing / min(width, height))
    digit_px = max(28.0, fraction * min(width, height))
    alpha = _ink_alpha(digit, digit_px, angle + float(rng.uniform(-8, 8)), stroke, blur, rng, pen == "pencil")
    h, w = alpha.shape
    left0, top0, right0, bottom0 = inside
    if scene == "ruled paper" and rng.random() < 0.5:  # near the margin line, often across it
        left = int(np.clip(0.12 * width - w * rng.uniform(0.0, 0.6), 0, width - w))
    else:
        left = int(rng.integers(int(left0), max(int(left0) + 1, int(right0) - w)))
    top = int(rng.integers(int(top0), max(int(top0) + 1, int(bottom0) - h)))
    _lay_ink(image, alpha, (left, top), PENS[pen])
    photo = _finish(image, lighting, noise, quality, rng)
    conditions |= {
        "paper": paper,
        "digit size": _bucket(fraction, [(0.06, "3-6 %"), (0.15, "6-15 %"), (1.0, "15-40 %")]),
    }
    return DigitPhoto(photo, label, (width, height), conditions)


def render_number_photo(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> NumberPhoto:
    """``digits`` (uint8 (n, 28, 28)) written left to right on a paper photo."""
    pen = str(rng.choice(list(PENS)))
    paper = str(rng.choice(list(PAPERS)))
    lighting = str(rng.choice(LIGHTING))
    spacing_kind = str(rng.choice(["touching", "tight", "normal", "wide"]))
    # Gaps between the digits' ink in digit heights; touching: overlapping by up to 15 % of
    # the narrower digit's width (see below).
    gap = {"touching": (-0.15, 0.0), "tight": (0.0, 0.1), "normal": (0.1, 0.35), "wide": (0.35, 0.8)}[
        spacing_kind
    ]
    digit_px = float(rng.uniform(40, 120))
    angle = float(rng.uniform(-5, 5))
    stroke = float(rng.choice([-1, 0, 0, 1]))
    blur = float(rng.uniform(0.0, 1.0))
    noise = float(rng.uniform(2.0, 8.0))
    quality = int(rng.integers(65, 96))
    alphas = []
    for digit in digits:
        size = digit_px * float(rng.uniform(0.9, 1.1))
        alphas.append(
            _ink_alpha(digit, size, angle + float(rng.uniform(-6, 6)), stroke, blur, rng, pen == "pencil")
        )
    # Lay the digits out by their ink's columns, so "touching" means the strokes touch.
    spans = []
    for alpha in alphas:
        cols = np.flatnonzero(alpha.max(axis=0) > 0.2)
        spans.append((int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, alpha.shape[1]))
    positions = []
    x = 0.0
    for k, (first, last) in enumerate(spans):
        positions.append(int(round(x - first)))
        step = float(rng.uniform(*gap))
        if k + 1 < len(spans) and step < 0:
            # Overlap is a fraction of the narrower neighbour (a 1 is narrow): "slightly".
            narrower = min(last - first, spans[k + 1][1] - spans[k + 1][0])
            x += (last - first) + step * narrower
        else:
            x += (last - first) + step * digit_px
    row_width = x
    tallest = max(a.shape[0] for a in alphas)
    margin_x = float(rng.uniform(0.3, 1.5)) * digit_px
    margin_y = float(rng.uniform(0.5, 2.0)) * digit_px
    width = int(row_width + 2 * margin_x)
    height = int(tallest + 2 * margin_y + 0.3 * digit_px)
    width, height = max(width, 200), max(height, 150)
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = np.array(PAPERS[paper], dtype=np.float32)
    baseline = margin_y
    boxes = []
    for alpha, position in zip(alphas, positions, strict=True):
        baseline += float(rng.uniform(-0.06, 0.06)) * digit_px
        top = int(np.clip(baseline, 0, height - alpha.shape[0]))
        left = int(np.clip(position + margin_x, 0, width - alpha.shape[1]))
        _lay_ink(image, alpha, (left, top), PENS[pen])
        # A faint, thin pencil digit can stay under 0.2 everywhere: its box is its visible ink.
        rows, cols = np.nonzero(alpha > min(0.2, 0.5 * float(alpha.max())))
        boxes.append(
            (
                left + int(cols.min()),
                top + int(rows.min()),
                left + int(cols.max()) + 1,
                top + int(rows.max()) + 1,
            )
        )
    photo = _finish(image, lighting, noise, quality, rng)
    conditions = {
        "pen": pen,
        "paper": paper,
        "lighting": lighting,
        "spacing": spacing_kind,
        "length": str(len(digits)),
    }
    return NumberPhoto(photo, "".join(str(int(v)) for v in labels), boxes, (width, height), conditions)


def render_numbers(digits: np.ndarray, labels: np.ndarray, seed: int) -> list[NumberPhoto]:
    """Numbers of 2-5 digits taken in turn from ``digits``, until they run out; deterministic."""
    rng = np.random.default_rng(seed)
    photos, start = [], 0
    while True:
        count = int(rng.integers(2, 6))
        if start + count > len(digits):
            return photos
        photos.append(render_number_photo(digits[start : start + count], labels[start : start + count], rng))
        start += count


def _lay_ink(image: np.ndarray, alpha: np.ndarray, at: tuple[int, int], pen: tuple[int, int, int]) -> None:
    left, top = at
    region = image[top : top + alpha.shape[0], left : left + alpha.shape[1]]
    a = alpha[: region.shape[0], : region.shape[1], np.newaxis]
    ink = np.array(pen, dtype=np.float32) / 255.0
    region *= 1.0 - a * (1.0 - ink)


def _finish(image: np.ndarray, lighting: str, noise: float, quality: int, rng: np.random.Generator) -> bytes:
    height, width = image.shape[:2]
    image *= _lighting(lighting, (width, height), rng)[..., np.newaxis]
    image += noise * rng.standard_normal((height, width, 1), dtype=np.float32)
    image += (noise / 2) * rng.standard_normal(image.shape, dtype=np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB").save(
        buffer, format="JPEG", quality=quality
    )
    return buffer.getvalue()


def _desk_with_sheet(
    size: tuple[int, int],
    desk: str,
    paper: tuple[int, int, int],
    cover: float,
    angle: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The desk with a rotated sheet on it, float32 (H, W, 3) 0-255, and an axis-aligned box
    (left, top, right, bottom) well inside the sheet for the digit."""
    width, height = size
    colour, strength = DESKS[desk]
    image = np.empty((height, width, 3), dtype=np.float32)
    image[:] = np.array(colour, dtype=np.float32) * float(rng.uniform(0.85, 1.1))
    image *= _desk_texture(desk, size, strength, rng)[..., np.newaxis]
    # The sheet: A4-like aspect, scaled to cover ``cover`` of the frame, rotated about a centre
    # placed so that it stays (nearly) inside the frame.
    ratio = float(rng.choice([1.414, 1.294]))
    long_axis_vertical = height >= width
    area = cover * width * height
    sheet_w = np.sqrt(area / ratio) if long_axis_vertical else np.sqrt(area * ratio)
    sheet_h = area / sheet_w
    theta = np.deg2rad(angle)
    extent_w = abs(sheet_w * np.cos(theta)) + abs(sheet_h * np.sin(theta))
    extent_h = abs(sheet_w * np.sin(theta)) + abs(sheet_h * np.cos(theta))
    cx = width / 2 + rng.uniform(-1, 1) * max(0.0, (width - extent_w) / 2)
    cy = height / 2 + rng.uniform(-1, 1) * max(0.0, (height - extent_h) / 2)
    corners = [
        (-sheet_w / 2, -sheet_h / 2),
        (sheet_w / 2, -sheet_h / 2),
        (sheet_w / 2, sheet_h / 2),
        (-sheet_w / 2, sheet_h / 2),
    ]
    polygon = [
        (cx + x * np.cos(theta) - y * np.sin(theta), cy + x * np.sin(theta) + y * np.cos(theta))
        for x, y in corners
    ]
    mask = _polygon_mask(size, polygon)
    # Drop shadow: the sheet's mask shifted and blurred, darkening the desk under it.
    offset = min(width, height) * float(rng.uniform(0.005, 0.02))
    direction = rng.uniform(0, 2 * np.pi)
    shadow = _polygon_mask(
        size, [(x + offset * np.cos(direction), y + offset * np.sin(direction)) for x, y in polygon]
    )
    radius = min(width, height) * float(rng.uniform(0.005, 0.02))
    shadow_layer = Image.fromarray(np.round(shadow * 255).astype(np.uint8), "L")
    shadow = np.asarray(shadow_layer.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
    image *= (1.0 - float(rng.uniform(0.3, 0.6)) * shadow)[..., np.newaxis]
    sheet = np.array(paper, dtype=np.float32)
    image += mask[..., np.newaxis] * (sheet - image)
    # The digit goes in the middle 60 % of the sheet (an axis-aligned box inside it).
    half_w = 0.3 * min(sheet_w, sheet_h) + 0.0 * sheet_w
    half_h = half_w
    return image, (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def _polygon_mask(size: tuple[int, int], polygon: list[tuple[float, float]]) -> np.ndarray:
    """float32 (H, W) coverage in [0, 1] of ``polygon``, anti-aliased (drawn at 4x, averaged)."""
    width, height = size
    big = Image.new("L", (width * 2, height * 2), 0)
    ImageDraw.Draw(big).polygon([(2 * x, 2 * y) for x, y in polygon], fill=255)
    return np.asarray(big.reduce(2), dtype=np.float32) / 255.0


def _desk_texture(desk: str, size: tuple[int, int], strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative texture, float32 (H, W) around 1: wood grain for the wooden desks (stripes
    along a random direction, warped by low-frequency noise), mottling for the others."""
    width, height = size
    small_w, small_h = max(2, width // 4), max(2, height // 4)
    smooth = rng.standard_normal((max(2, small_h // 16), max(2, small_w // 16))).astype(np.float32)
    warp = np.asarray(Image.fromarray(smooth, "F").resize((small_w, small_h), Image.Resampling.BICUBIC))
    if "wood" in desk:
        ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
        theta = rng.uniform(-0.3, 0.3) + (0 if rng.random() < 0.5 else np.pi / 2)
        period = rng.uniform(6, 20)
        phase = (xs * np.cos(theta) + ys * np.sin(theta)) / period + 1.5 * warp
        grain = 0.6 * np.sin(2 * np.pi * phase) + 0.4 * np.sin(2 * np.pi * 3.1 * phase + 1.0)
        texture = 1.0 + strength * grain.astype(np.float32)
    else:
        fine = rng.standard_normal((small_h, small_w)).astype(np.float32) * 0.3
        texture = 1.0 + strength * (warp + fine)
    return np.asarray(
        Image.fromarray(texture.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR)
    )


def _draw_lines(image: np.ndarray, scene: str, rng: np.random.Generator, angle: float) -> float:
    """Draw rules (and a margin line) or squares on ``image`` in place, tilted by a little of
    ``angle`` (the page is not square to the camera); returns the line spacing in pixels."""
    height, width = image.shape[:2]
    spacing = min(width, height) * float(rng.uniform(0.05, 0.1))
    thickness = max(1, int(round(spacing * float(rng.uniform(0.03, 0.07)))))
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    tilt = np.tan(np.deg2rad(0.3 * angle))
    ink = np.array(
        RULE_INK if scene == "ruled paper" or rng.random() < 0.6 else (160, 160, 165), dtype=np.float32
    )
    offset = float(rng.uniform(0, spacing))
    for k in range(-2, int(height / spacing) + 3):
        y = offset + k * spacing
        draw.line([(0, y), (width, y + tilt * width)], fill=255, width=thickness)
    if scene == "squared paper":
        for k in range(-2, int(width / spacing) + 3):
            x = offset + k * spacing
            draw.line([(x, 0), (x - tilt * height, height)], fill=255, width=thickness)
    coverage = (
        np.asarray(layer.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)[..., np.newaxis] / 255.0
    )
    image += coverage * float(rng.uniform(0.35, 0.75)) * (ink - image)
    if scene == "ruled paper":
        margin = Image.new("L", (width, height), 0)
        x = 0.12 * width
        ImageDraw.Draw(margin).line([(x, 0), (x - tilt * height, height)], fill=255, width=thickness + 1)
        coverage = (
            np.asarray(margin.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)[..., np.newaxis]
            / 255.0
        )
        image += coverage * 0.85 * (np.array(MARGIN_INK, dtype=np.float32) - image)
    return spacing


def _drawing_app(digit: np.ndarray, label: int, rng: np.random.Generator) -> DigitPhoto:
    """A drawing app's portrait screenshot: the digit in a brush colour on black, a status bar."""
    width, height = (1080, 2340) if rng.random() < 0.5 else (720, 1600)
    brush = str(rng.choice(list(BRUSHES)))
    image = np.zeros((height, width, 3), dtype=np.float32)
    image[:] = float(rng.uniform(0, 25))
    fraction = float(rng.uniform(0.3, 0.8))  # of the width: people draw big on a phone
    stroke = float(rng.choice([0, 1, 2]))
    # Drawn at a quarter of the size and scaled up (a brush is smooth; the stroke filters on
    # an 800 px digit take seconds).
    small = _ink_alpha(digit, fraction * width / 4, float(rng.uniform(-8, 8)), stroke, 0.3, rng, pencil=False)
    alpha = np.asarray(
        Image.fromarray(small, "F").resize(
            (small.shape[1] * 4, small.shape[0] * 4), Image.Resampling.BICUBIC
        ),
        dtype=np.float32,
    ).clip(0.0, 1.0)
    h, w = alpha.shape
    top = int(rng.integers(int(0.1 * height), max(int(0.1 * height) + 1, int(0.85 * height) - h)))
    left = int(rng.integers(0, max(1, width - w)))
    colour = np.array(BRUSHES[brush], dtype=np.float32)
    region = image[top : top + h, left : left + w]
    a = alpha[: region.shape[0], : region.shape[1], np.newaxis]
    region += a * (colour - region)
    # Status bar: a few small light glyph-like marks (signal bars, battery) along the top.
    bar = int(0.03 * height)
    draw_layer = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(draw_layer)
    for k in range(4):
        x = width - bar * (6 - k)
        draw.rectangle([x, bar - k * bar // 5, x + bar // 4, bar + bar // 3], fill=(235, 235, 235))
    draw.rectangle([bar, bar // 2, bar * 3, bar], outline=(235, 235, 235), width=2)
    buffer = io.BytesIO()
    draw_layer.save(buffer, format="PNG")
    conditions = {"scene": "drawing app", "pen": f"brush {brush}", "paper": "screen"}
    return DigitPhoto(buffer.getvalue(), label, (width, height), conditions)
