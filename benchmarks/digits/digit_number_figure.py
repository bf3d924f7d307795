"""The picture in docs/digits.md: photos of numbers with the boxes the number route finds.

Numbers written with MNIST *test* digits (tests.harness.digit_scenes), read in-process the way
``POST /models/{name}/number`` reads them (``service.engine.numbers.read_number`` with
the bundled model), each digit's box and answer drawn over the photo.

Command: ``python -m benchmarks.digits.digit_number_figure`` (writes docs/number_boxes.png).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from service.engine.numbers import read_number
from service.engine.registry import load_registry
from tests.harness.digit_scenes import render_numbers
from tests.harness.paths import MNIST_NPZ, PROJECT_ROOT

OUTPUT = PROJECT_ROOT / "docs" / "number_boxes.png"
PANEL_HEIGHT = 220


def main() -> None:
    with np.load(MNIST_NPZ) as data:
        digits, labels = data["x_test"][5000:5040], data["y_test"][5000:5040]
    model = load_registry(PROJECT_ROOT / "models_onnx", 1).ready["mnist"]
    photos = render_numbers(digits, labels, 18)[:4]
    panels = []
    for photo in photos:
        read = read_number(model, photo.jpeg, 50_000_000, 1)
        image = Image.open(io.BytesIO(photo.jpeg)).convert("RGB")
        draw = ImageDraw.Draw(image)
        for box, ranked in read.digits:
            draw.rectangle(box, outline=(224, 36, 94), width=3)
            draw.text((box[0] + 3, box[1] + 2), ranked[0].label, fill=(224, 36, 94))
        number = "".join(ranked[0].label for _, ranked in read.digits)
        scale = PANEL_HEIGHT / image.height
        panel = image.resize((round(image.width * scale), PANEL_HEIGHT), Image.Resampling.LANCZOS)
        caption = Image.new("RGB", (panel.width, 22), (255, 255, 255))
        ImageDraw.Draw(caption).text((4, 5), f"written {photo.number}, read {number}", fill=(0, 0, 0))
        framed = Image.new("RGB", (panel.width, PANEL_HEIGHT + 22), (255, 255, 255))
        framed.paste(panel, (0, 0))
        framed.paste(caption, (0, PANEL_HEIGHT))
        panels.append(framed)
    width = sum(p.width for p in panels) + 8 * (len(panels) - 1)
    sheet = Image.new("RGB", (width, PANEL_HEIGHT + 22), (255, 255, 255))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width + 8
    sheet.save(OUTPUT, optimize=True)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
