"""Cut a photographed number (digits written in one row) into MNIST-normalised digits.

The paper, its illumination and the ink are found as for one digit (``.digits``: sheet on a
desk, rules and lines taken out); then, on the coarse image's ink components:

1. The row: the most digit-like component (``InkParts.score``) starts it; components of at
   least ``MIN_PART`` of the heaviest one's area join it when they overlap the row's band
   vertically by half their height and are within ``ROW_GAP`` row heights of it sideways,
   until none joins. Specks and rules do not (too small, or taken out as lines).
2. Digits: the row's components sorted left to right; one that overlaps the digit before it
   horizontally by ``MERGE_OVERLAP`` of the narrower is part of it (a 4, 5 or 7 drawn in two
   strokes). Neighbours that touch or overlap a little stay two digits.
3. Touching digits that are one component: a digit wider than ``SPLIT_ASPECT`` x its height
   holds about width / (``DIGIT_ASPECT`` x height) digits, cut at the columns of least ink
   near the even cuts.
4. Each digit's ink is re-read from the full image and normalised the MNIST way
   (``digits.fine_ink``, ``digits.ink_canvas``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from service.images.preprocessing import digits
from service.images.preprocessing.color import has_alpha
from service.images.preprocessing.sheet import NUMBER_EDGE_QUANTILE
from service.manifest import MnistDigitPreprocessing

# The coarse image is larger than for one digit: a 12-digit number across the frame leaves
# each digit ~25 px wide here.
WORKING_SIDE = 640
MIN_PART = 0.04
NUMBER_INK_FRACTION = 0.15
ROW_GAP = 1.5
MERGE_OVERLAP = 0.5
# Of 20,000 MNIST training digits 11 % are wider than tall and 2 % 1.3x wider: ink wider than
# SPLIT_ASPECT x the row height is read as width / (DIGIT_ASPECT x height) digits first.
SPLIT_ASPECT = 1.5
DIGIT_ASPECT = 0.7
MAX_DIGITS = 12
# Ink at least this wide for its height may be one digit or two touching: both are read.
AMBIGUOUS_ASPECT = 0.75
MAX_SPLIT = 4
CUT_REACH = 0.4
# Further cuts tried, moved by these fractions of a digit's width, each within BIAS_REACH.
BIASES = (0.0, -0.25, 0.25)
BIAS_REACH = 0.1
# A group shorter than this fraction of the row's digit height is a fragment or a speck; it
# joins a neighbour within MAX_GAP of that neighbour's height. Pieces of a split are at least
# this tall too.
FRAGMENT = 0.6
MAX_GAP = 0.35
# Another reading than the shape's own must beat it by this factor (geometric-mean confidence):
# 1.0, ties only (on 1,000 training digits' numbers: 0.87 exact vs 0.845 at 1.1, 0.34 at 0.9).
READING_MARGIN = 1.0


@dataclass(frozen=True)
class DigitCrop:
    """One digit of a number.

    Attributes:
        box: (left, top, right, bottom) of its ink in the image's pixels (right and bottom
            exclusive).
        tensor: float32 (canvas, canvas, 1) in [0, 1], MNIST-normalised (light ink on black).
    """

    box: tuple[int, int, int, int]
    tensor: np.ndarray


@dataclass(frozen=True)
class Segment:
    """One stretch of the row's ink and the ways to read it: ``readings[0]`` is the likeliest
    by its shape (one digit, or as many as its width holds), the others one digit fewer or
    more, each a list of crops left to right. Only ink about as wide as tall or wider
    (``AMBIGUOUS_ASPECT``) has more than one reading."""

    readings: list[list[DigitCrop]]
    aspect: float = 0.0


def segment_number(image: Image.Image, spec: MnistDigitPreprocessing) -> list[Segment]:
    """The ink of the number in ``image`` as segments, left to right; empty when there is no
    ink. Boxes are in ``image``'s pixels; ``read_number`` picks each segment's reading.

    Args:
        image: any Pillow image (any size and mode, as ``digits.mnist_digit_tensor`` takes).
        spec: the model's MNIST box and canvas sizes and resampling filter.
    """
    width, height = image.size
    coarse_size = digits._fit_within((width, height), WORKING_SIDE)
    flip = digits._transparent_ink_is_dark(image) if has_alpha(image) else None
    workspace = digits.Workspace()
    coarse = digits._sample(image, (0, 0, width, height), coarse_size, flip, workspace=workspace)
    # A row of large digits can straddle a shadow's edge: see ``sheet.NUMBER_EDGE_QUANTILE``.
    estimate = digits._Paper.estimate(coarse, workspace, NUMBER_EDGE_QUANTILE)
    if estimate is None:
        return []
    paper, strength = estimate
    # A number's digits differ in darkness (pressure, a pencil): a lower share of the
    # strongest ink than for one digit, never below the paper's noise.
    threshold = max(paper.noise, NUMBER_INK_FRACTION * paper.peak)
    paper = dataclasses.replace(paper, threshold=threshold, floor=min(paper.floor, threshold))
    found = digits.ink_parts(strength, threshold, workspace)
    if found is None:
        return []

    def crop(members: list[int], columns: tuple[int, int], typical: float) -> DigitCrop | None:
        """The digit made of ``members``' ink in ``columns``; ``None`` when that is no ink,
        or ink shorter than ``FRAGMENT`` x ``typical`` (a split's piece must be a digit)."""
        first_col, last_col = columns
        kept = np.zeros(found.parts.count, dtype=bool)
        kept[members] = True
        mask = found.mask_of(kept)
        mask[:, :first_col] = False
        mask[:, last_col + 1 :] = False
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0 or rows[-1] - rows[0] + 1 < FRAGMENT * typical:
            return None
        cheight, cwidth = mask.shape
        top, bottom = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, cheight)
        left, right = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, cwidth)
        grown = digits._dilate(mask[top:bottom, left:right])
        # A neighbour's ink within the grown margin stays out: only this digit's columns.
        grown[:, : max(first_col - left, 0)] = False
        grown[:, max(last_col + 1 - left, 0) :] = False
        ink = digits.fine_ink(image, paper, (left, top, right, bottom), grown, coarse_size, flip)
        tensor = digits.ink_canvas(ink, spec)
        if not tensor.any():
            return None
        box = digits.source_box(
            (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1), coarse_size, (width, height)
        )
        return DigitCrop(box, tensor)

    groups, typical = _digit_groups(found)
    segments = []
    for members, span, counts in groups:
        readings = []
        for count, bias in ((c, b) for c in counts for b in (BIASES if c > 1 else (0.0,))):
            cuts = _split(found, members, span, count, bias)
            reading = [c for c in (crop(members, cut, typical if count > 1 else 0.0) for cut in cuts)]
            if reading and all(c is not None for c in reading):
                readings.append([c for c in reading if c is not None])
        if readings:
            segments.append(Segment(readings, (span[1] - span[0] + 1) / typical))
    return segments


def read_number(
    segments: list[Segment], classify: Callable[[np.ndarray], np.ndarray]
) -> list[tuple[DigitCrop, np.ndarray]]:
    """Each segment's likeliest reading, by the classifier, with every crop's probabilities.

    Args:
        segments: from ``segment_number``.
        classify: float32 (N, canvas, canvas, 1) -> class probabilities (N, 10); called once,
            on every crop of every reading (one batch).

    Returns:
        The number's digits left to right: (crop, probabilities (10,)) each. A segment's
        reading is the one whose digits' confidences have the highest geometric mean, the
        shape's own reading (``readings[0]``) winning unless another beats it by
        ``READING_MARGIN``.
    """
    crops = [crop for segment in segments for reading in segment.readings for crop in reading]
    if not crops:
        return []
    probabilities = classify(np.stack([crop.tensor for crop in crops]))
    out: list[tuple[DigitCrop, np.ndarray]] = []
    index = 0
    for segment in segments:
        best, best_score, choice = None, -np.inf, []
        for k, reading in enumerate(segment.readings):
            rows = probabilities[index : index + len(reading)]
            index += len(reading)
            score = float(np.mean(np.log(np.maximum(rows.max(axis=1), 1e-9))))
            if k > 0:
                score -= np.log(READING_MARGIN)
            if score > best_score:
                best, best_score, choice = reading, score, list(rows)
        assert best is not None
        out.extend(zip(best, choice, strict=True))
    return out


def _digit_groups(
    found: digits.InkParts,
) -> tuple[list[tuple[list[int], tuple[int, int], list[int]]], float]:
    """The number's ink groups, left to right: each the components it is made of, the column
    range (first, last, inclusive, coarse pixels) it owns and how many digits it may hold
    (likeliest first); and the row's digit height (coarse pixels)."""
    top, bottom, left, right, area = found.top, found.bottom, found.left, found.right, found.area
    main = int(np.argmax(found.score()))
    candidates = np.flatnonzero(area >= max(2, MIN_PART * area[main]))
    in_row = {main}
    row = [int(top[main]), int(bottom[main]), int(left[main]), int(right[main])]
    changed = True
    while changed:
        changed = False
        band = row[1] - row[0] + 1
        for c in candidates.tolist():
            if c in in_row:
                continue
            height = bottom[c] - top[c] + 1
            overlap = min(bottom[c], row[1]) - max(top[c], row[0]) + 1
            gap = max(row[2] - right[c], left[c] - row[3], 0)
            if overlap >= 0.5 * height and gap <= ROW_GAP * band and height <= 2 * band:
                in_row.add(int(c))
                row = [
                    min(row[0], top[c]),
                    max(row[1], bottom[c]),
                    min(row[2], left[c]),
                    max(row[3], right[c]),
                ]
                changed = True
    order = sorted(in_row, key=lambda c: (left[c], right[c]))
    merged: list[list[int]] = []
    spans: list[list[int]] = []
    for c in order:
        if spans:
            first, last = spans[-1]
            overlap = min(last, right[c]) - max(first, left[c]) + 1
            narrower = min(last - first, right[c] - left[c]) + 1
            if overlap >= MERGE_OVERLAP * narrower:
                merged[-1].append(int(c))
                spans[-1] = [min(first, int(left[c])), max(last, int(right[c]))]
                continue
        merged.append([int(c)])
        spans.append([int(left[c]), int(right[c])])
    if len(merged) > MAX_DIGITS:
        heaviest = sorted(range(len(merged)), key=lambda g: -float(found.mass[merged[g]].sum()))
        keep = sorted(heaviest[:MAX_DIGITS])
        merged, spans = [merged[g] for g in keep], [spans[g] for g in keep]
    typical = _typical_height(found, merged)
    merged, spans = _absorb_fragments(found, merged, spans, typical)
    groups = []
    for members, (first, last) in zip(merged, spans, strict=True):
        width = last - first + 1
        likely = max(1, int(round(width / (DIGIT_ASPECT * typical)))) if width > SPLIT_ASPECT * typical else 1
        counts = [likely]
        if width > AMBIGUOUS_ASPECT * typical:
            counts += [n for n in (likely - 1, likely + 1) if 1 <= n <= MAX_SPLIT]
        groups.append((members, (first, last), counts))
    return groups, typical


def _typical_height(found: digits.InkParts, merged: list[list[int]]) -> float:
    """The row's digit height: the median height of its groups at least half as heavy as the
    heaviest (fragments and specks do not count)."""
    area = np.array([found.area[m].sum() for m in merged], dtype=np.float64)
    heights = [
        float(found.bottom[m].max() - found.top[m].min() + 1)
        for m, a in zip(merged, area, strict=True)
        if a >= 0.5 * area.max()
    ]
    return float(np.median(heights))


def _absorb_fragments(
    found: digits.InkParts, merged: list[list[int]], spans: list[list[int]], typical: float
) -> tuple[list[list[int]], list[list[int]]]:
    """Groups much shorter than the row's digits (``FRAGMENT`` x ``typical`` height: a stroke
    that came apart, a speck) join the nearer neighbour if it is within ``MAX_GAP`` of its
    height sideways, else go; shortest first."""
    heights = np.array([found.bottom[m].max() - found.top[m].min() + 1 for m in merged], dtype=np.float64)
    alive = [True] * len(merged)
    for g in np.argsort(heights):
        if heights[g] >= FRAGMENT * typical:
            break
        neighbours = _nearest_alive(g, alive)
        alive[g] = False
        best, best_gap = None, np.inf
        for n in neighbours:
            gap = max(spans[n][0] - spans[g][1], spans[g][0] - spans[n][1], 0)
            if gap < best_gap:
                best, best_gap = n, gap
        if best is None:
            continue
        height = int(found.bottom[merged[best]].max() - found.top[merged[best]].min() + 1)
        if best_gap <= MAX_GAP * height:
            merged[best] = merged[best] + merged[g]
            spans[best] = [min(spans[best][0], spans[g][0]), max(spans[best][1], spans[g][1])]
    return [m for m, a in zip(merged, alive, strict=True) if a], [
        s for s, a in zip(spans, alive, strict=True) if a
    ]


def _nearest_alive(g: int, alive: list[bool]) -> list[int]:
    """The nearest groups still alive on the left and on the right of group ``g``."""
    out = []
    for direction in (-1, 1):
        n = g + direction
        while 0 <= n < len(alive) and not alive[n]:
            n += direction
        if 0 <= n < len(alive):
            out.append(n)
    return out


def _split(
    found: digits.InkParts, members: list[int], span: tuple[int, int], count: int, bias: float = 0.0
) -> list[tuple[int, int]]:
    """``span`` (first, last column) of a group cut into ``count`` column ranges, each cut at
    the column of least ink (the group's own) within ``CUT_REACH`` of a digit's width of the
    even cut moved by ``bias`` digit widths (overlapping digits have no empty column: the
    classifier then chooses among the biased cuts)."""
    first, last = span
    if count <= 1:
        return [span]
    width = last - first + 1
    pixels = found.parts.pixels[np.isin(found.parts.labels, members)]
    profile = np.bincount(pixels % found.ink.shape[1] - first, minlength=width)
    cuts = [first]
    for k in range(1, count):
        centre = (k + bias) * width / count
        reach = max(1, int((CUT_REACH if bias == 0.0 else BIAS_REACH) * width / count))
        low, high = max(cuts[-1] - first + 1, int(centre) - reach), min(width - 1, int(centre) + reach)
        if low > high:
            continue
        cuts.append(first + low + int(np.argmin(profile[low : high + 1])))
    cuts.append(last + 1)
    return [(cuts[i], cuts[i + 1] - 1) for i in range(len(cuts) - 1) if cuts[i + 1] > cuts[i]]
