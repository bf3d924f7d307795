"""A contact sheet (PNG) of images with two models' answers: where int8 and fp32 disagree.

Each tile is the image's thumbnail (aspect kept, on grey) over three caption lines: the true
class (when known), fp32's top-1 and its probability, int8's top-1 and its probability. Drawn
with Pillow only (its built-in font), so the build needs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

THUMB = 160  # pixels, the longer side of each thumbnail
CAPTION = 54  # pixels under each thumbnail: three lines of text
COLUMNS = 6
PAD = 8
FONT_SIZE = 13


@dataclass(frozen=True)
class Tile:
    """One image and its answers: ``fp32`` / ``int8`` are (label, probability in [0, 1])."""

    path: Path
    truth: str | None
    fp32: tuple[str, float]
    int8: tuple[str, float]


def write_contact_sheet(path: Path, tiles: list[Tile], title: str) -> Path:
    """Write the sheet of ``tiles`` under a ``title`` line to ``path`` (PNG); with no tiles, the
    title alone says so. Unreadable images get a blank tile. Returns ``path``."""
    font = ImageFont.load_default(FONT_SIZE)
    columns = max(1, min(COLUMNS, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    width = max(PAD + columns * (THUMB + PAD), 640)
    header = 2 * FONT_SIZE + PAD
    sheet = Image.new("RGB", (width, header + rows * (THUMB + CAPTION + PAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), title if tiles else f"{title} - nothing to show", fill="black", font=font)
    for index, tile in enumerate(tiles):
        x = PAD + (index % columns) * (THUMB + PAD)
        y = header + (index // columns) * (THUMB + CAPTION + PAD)
        sheet.paste(_thumbnail(tile.path), (x, y))
        lines = [
            (f"true: {tile.truth}" if tile.truth is not None else tile.path.name, "black"),
            (f"fp32: {tile.fp32[0]} {tile.fp32[1]:.2f}", "#1f5fbf"),
            (f"int8: {tile.int8[0]} {tile.int8[1]:.2f}", "#b3261e"),
        ]
        for line, (text, colour) in enumerate(lines):
            draw.text(
                (x, y + THUMB + 2 + line * (FONT_SIZE + 4)), _fit(draw, text, font), fill=colour, font=font
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "PNG", optimize=True)
    return path


def _thumbnail(path: Path) -> Image.Image:
    tile = Image.new("RGB", (THUMB, THUMB), "#dddddd")
    try:
        with Image.open(path) as image:
            picture = ImageOps.exif_transpose(image).convert("RGB")
            picture.thumbnail((THUMB, THUMB))
    except OSError:
        return tile
    tile.paste(picture, ((THUMB - picture.width) // 2, (THUMB - picture.height) // 2))
    return tile


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` cut (with an ellipsis) to the tile's width."""
    while len(text) > 4 and draw.textlength(text, font=font) > THUMB:
        text = text[:-2] + "…"
    return text
