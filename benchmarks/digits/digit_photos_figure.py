"""Draw docs/digit_photos.png: a few digit photos and the 28x28 tensors the service makes of them.

Rows of (photo, tensor before issue 10, tensor now). Photos are MNIST test digits rendered by
``tests/harness/digit_photos.py`` (the HTTP test's generator, seed 2026), plus two that do not work:
two digits in one photo and a digit on squared paper with dark 2 px lines.

Command: ``.venv/bin/python -m benchmarks.digits.digit_photos_figure [--out docs/digit_photos.png]``
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from benchmarks.digits import digit_preprocessing_baseline as baseline
from service.images.decode import decode_image
from service.images.preprocessing import digits as current
from service.manifest import MnistDigitPreprocessing
from tests.harness.digit_photos import render_photos
from tests.harness.paths import MNIST_NPZ, PROJECT_ROOT

SPEC = MnistDigitPreprocessing()
TILE = 132
PANELS = 2  # rows are laid out in this many side-by-side panels
PICKS = (0, 3, 5, 8, 11, 17)  # varied pens, papers, lighting and sizes among the first photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "digit_photos.png")
    args = parser.parse_args()
    with np.load(MNIST_NPZ) as data:
        digits, labels = data["x_test"][:20], data["y_test"][:20]
    photos = render_photos(digits, labels, 2026)
    rows = [(decode_image(photos[i].jpeg, 50_000_000), _caption(photos[i].conditions)) for i in PICKS]
    rows.append((_two_digits(digits[0], digits[1]), "two digits: only one is read"))
    rows.append((_squared_paper(digits[2]), "squared paper, dark 2 px lines: fails"))

    panel_width = 3 * TILE + 4 * 8
    per_panel = -(-len(rows) // PANELS)
    width = PANELS * panel_width + (PANELS - 1) * 16
    height = 24 + per_panel * (TILE + 22) + 8
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (image, caption) in enumerate(rows):
        x0 = (row // per_panel) * (panel_width + 16)
        top = 24 + (row % per_panel) * (TILE + 22)
        if row % per_panel == 0:
            for col, title in enumerate(("photo (upload)", "28x28 before", "28x28 now")):
                draw.text((x0 + 8 + col * (TILE + 8), 6), title, fill="black")
        thumb = image.convert("RGB")
        thumb.thumbnail((TILE, TILE))
        sheet.paste(thumb, (x0 + 8, top))
        for col, function in ((1, baseline.mnist_digit_tensor), (2, current.mnist_digit_tensor)):
            tensor = function(image, SPEC)[..., 0]
            tile = Image.fromarray(np.round(tensor * 255).astype(np.uint8)).resize(
                (TILE, TILE), Image.Resampling.NEAREST
            )
            sheet.paste(tile.convert("RGB"), (x0 + 8 + col * (TILE + 8), top))
        draw.text((x0 + 8, top + TILE + 4), caption, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}")


def _caption(conditions: dict[str, str]) -> str:
    pen = conditions["pen"] if conditions["pen"] == "pencil" else f"{conditions['pen']} pen"
    return f"{pen}, {conditions['paper']} paper, {conditions['lighting']}, digit {conditions['digit size']}"


def _ink_on_paper(digit: np.ndarray, scale: int) -> Image.Image:
    return Image.fromarray(255 - digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)


def _two_digits(first: np.ndarray, second: np.ndarray) -> Image.Image:
    page = Image.new("L", (600, 400), 255)
    page.paste(_ink_on_paper(first, 6), (60, 60))
    page.paste(_ink_on_paper(second, 6), (330, 60))
    return _as_upload(page)


def _squared_paper(digit: np.ndarray) -> Image.Image:
    page = np.full((400, 400), 245, dtype=np.uint8)
    for offset in (0, 1):  # 2 px lines, as dark as a pencil
        page[offset::20, :] = 90
        page[:, offset::20] = 90
    ink = np.asarray(_ink_on_paper(digit, 8))
    region = page[88:312, 88:312]
    page[88:312, 88:312] = np.minimum(region, ink)
    return _as_upload(Image.fromarray(page))


def _as_upload(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=90)
    return decode_image(buffer.getvalue(), 50_000_000)


if __name__ == "__main__":
    main()
