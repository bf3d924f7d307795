"""Long straight lines in an ink mask: ruled and squared paper, margin lines, table edges.

A notebook's rules and margin line are ink to the digit normaliser, and a digit written across
them joins them into one component that spans the page. Lines are told from strokes by their
length: a rule crosses most of the frame, a digit's straightest stroke (the bar of a 7) at most
its own width, under ``MIN_LENGTH`` of the frame.

Method (a Hough transform restricted to near-horizontal and near-vertical lines, Duda & Hart
1972, "Use of the Hough transformation to detect lines and curves in pictures"): the candidate
ink pixels are projected along angles within ``MAX_TILT`` degrees of the rows (then of the
columns), every ``COARSE_STEP`` degrees and then every ``TILT_STEP`` around the best; at the
angle whose projection is the most concentrated (largest sum of squared counts: parallel rules
add up), a line is a run of offsets each holding at least ``FILL`` of the frame's width
(height) of ink, at most ``MAX_THICKNESS`` (or ``THICKNESS_FRACTION`` of the frame) wide,
spanning ``MIN_LENGTH`` of the frame and reaching within ``EDGE_MARGIN`` of both its edges
(rules run off the page; a drawn 1 or bar does not). The caller (``digits.ink_parts``) decides
which of a line's pixels to take out and joins a digit split by a removed rule.
"""

from __future__ import annotations

import numpy as np

MIN_LENGTH = 0.45
MAX_TILT = 12.0
TILT_STEP = 0.5
COARSE_STEP = 2.0
# An offset holds a line's slice when it has this fraction of the frame's length of ink; a
# line is a run of such offsets at most MAX_THICKNESS (or THICKNESS_FRACTION of the frame) wide.
FILL = 0.25
MAX_THICKNESS = 6
THICKNESS_FRACTION = 0.02
# A line ends within this fraction of the frame's length (+ 1 px) of the frame's edge.
EDGE_MARGIN = 0.06


def line_pixels(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which long line, if any, each of the ink pixels at (``rows``, ``cols``) lies on.

    Args:
        rows, cols: the candidate pixels' coordinates (int64 (K,) each) in a (height, width)
            = ``shape`` mask.

    Returns:
        int64 (K,): -1 off the lines, else a line's number (0, 1, ...): near-horizontal lines
        at least ``MIN_LENGTH`` x width long, near-vertical ones ``MIN_LENGTH`` x height long
        (a pixel where two cross gets the near-vertical one's).
    """
    height, width = shape
    line = np.full(rows.size, -1, dtype=np.int64)
    if rows.size == 0:
        return line
    count = 0
    for along, across, length in ((cols, rows, width), (rows, cols, height)):
        if along.size < MIN_LENGTH * length:
            continue
        found = _lines_of_family(along.astype(np.float64), across.astype(np.float64), length)
        line = np.where(found >= 0, found + count, line)
        count += int(found.max()) + 1
    return line


def _lines_of_family(along: np.ndarray, across: np.ndarray, length: float) -> np.ndarray:
    """Pixels on lines nearly parallel to the ``along`` axis: int64 (K,), -1 or the line's
    number (0, 1, ... in this family)."""
    base = across.min() - np.abs(along).max() * np.tan(np.deg2rad(MAX_TILT + COARSE_STEP)) - 1

    def projection(degrees: float) -> tuple[float, np.ndarray, np.ndarray]:
        offset = np.floor(across - np.tan(np.deg2rad(degrees)) * along - base).astype(np.int64)
        counts = np.bincount(offset)
        return float(np.dot(counts, counts)), offset, counts

    # Coarse to fine: every COARSE_STEP degrees, then every TILT_STEP around the best.
    coarse = max(
        np.arange(-MAX_TILT, MAX_TILT + COARSE_STEP / 2, COARSE_STEP), key=lambda d: projection(d)[0]
    )
    fine = np.arange(coarse - COARSE_STEP / 2, coarse + COARSE_STEP / 2 + TILT_STEP / 2, TILT_STEP)
    _, offset, counts = max((projection(d) for d in fine), key=lambda p: p[0])
    # Lines are thin runs of well-filled offsets; a thick brush stroke is a wide run.
    high = counts >= FILL * length
    edges = np.diff(high.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    on_line = np.full(along.size, -1, dtype=np.int64)
    number = 0
    for start, stop in zip(starts, stops, strict=True):
        if stop - start > max(MAX_THICKNESS, THICKNESS_FRACTION * length):
            continue
        # The run and one offset either side (a line's anti-aliased rim).
        members = (offset >= start - 1) & (offset <= stop)
        first, last = along[members].min(), along[members].max()
        # Rules and edges run off the page: a line reaches the frame's edge at both ends.
        reaches_edge = max(first, length - 1 - last) <= EDGE_MARGIN * length + 1
        long_enough = last - first + 1 >= MIN_LENGTH * length
        if reaches_edge and long_enough and counts[start:stop].sum() >= FILL * length * (stop - start):
            on_line[members] = number
            number += 1
    return on_line
