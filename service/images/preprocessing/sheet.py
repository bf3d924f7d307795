"""Find a sheet of paper lying on a darker or differently coloured surround (a desk, a table).

A photo of a sheet on a desk has two "papers" for the digit normaliser: the sheet and the desk.
The step from desk to sheet is then the strongest dark-on-light edge in the frame and reads as
ink (issue 18: 4 % of such photos were read right). This module finds the sheet so the ink
search can stay inside it.

Method (numpy only, on a luminance subsample of ~8,000 pixels, ``small``):

1. Quick reject: a sheet that covers at most ~90 % of the frame leaves the surround along a
   good part of the frame's border. If under ``MIN_BORDER_DARK`` of the border pixels are
   clearly darker than the paper level (the 90th percentile), there is no surround.
2. Bright vs dark by Otsu's threshold (Otsu 1979, "A threshold selection method from
   gray-level histograms") on a 64-bin histogram; the sheet is the largest bright
   8-connected component with its holes filled (the ink on it is dark).
3. Accept it only if it is a plausible sheet: ``MIN_SHEET``-``MAX_SHEET`` of the frame, its
   surround at least ``MIN_SURROUND`` of the frame, and a sharp edge: across the sheet's
   outline the luminance steps by at least ``MIN_SHARPNESS`` of the sheet-vs-surround contrast
   within one subsample pixel (paper edges are sharp; a shadow or vignette falling over the
   paper itself is soft, at least ~4 % of the frame wide, and stays "paper").
4. The interior: the sheet eroded by ``ERODE`` subsample pixels (past the edge's blur and the
   anti-aliased rim), as a boolean mask on the subsample grid.
"""

from __future__ import annotations

import numpy as np

from service.images.preprocessing.components import label

MIN_BORDER_DARK = 0.15
MIN_SHEET = 0.4
# A rectangle rotated by 20 degrees fills 61 % of its bounding box.
MIN_BOX_FILL = 0.55
MAX_SHEET = 0.97
MIN_SURROUND = 0.04
MIN_SHARPNESS = 0.7
ERODE = 1
# The sheet is brighter than its surround by at least this much (0-1).
MIN_CONTRAST = 0.2
# At least this fraction of the sheet is brighter than Otsu's threshold (ink covers the rest).
MIN_PAPER = 0.8
# Border pixels "clearly darker" than the paper: below this fraction of its level.
DARK_RATIO = 0.85
# For a number (``.number``), the outline must be sharp at its 35th percentile of steps, not
# just its median: a row of large digits straddling a shadow's soft edge makes the middle of
# that outline sharp, and the shadow-free half of the page passed as a "sheet" (its ink in the
# shadow then lost: 59211 read as 5). On 284 numbers of MNIST *train* digits: 0.856 -> 0.870
# exact; the same setting for one digit cost a grey-desk photo, so one digit keeps the median.
NUMBER_EDGE_QUANTILE = 0.35


def find_sheet(small: np.ndarray, edge_quantile: float = 0.5) -> np.ndarray | None:
    """The interior of a sheet of paper in ``small``, or ``None`` when there is none.

    Args:
        small: float32 (h, w) luminance in [0, 1], dark ink on light paper or not (a light-on-
            dark drawing has no bright sheet of the needed size and gives ``None``).
        edge_quantile: the quantile of the outline's steps that must be sharp (0.5: the
            median, for one digit; ``NUMBER_EDGE_QUANTILE`` for a number, see there).

    Returns:
        bool (h, w), True inside the sheet (eroded past its edge), or ``None``.
    """
    height, width = small.shape
    if height < 8 or width < 8:
        return None
    border = np.concatenate([small[0], small[-1], small[1:-1, 0], small[1:-1, -1]])
    flat = small.ravel()
    paper = float(np.partition(flat, int(0.9 * (flat.size - 1)))[int(0.9 * (flat.size - 1))])
    if np.count_nonzero(border < DARK_RATIO * paper) < MIN_BORDER_DARK * border.size:
        return None
    threshold, dark_mean = _otsu(flat)
    # A shadow across the sheet can make Otsu's split the lit paper from the rest (too small,
    # or with the shadow's soft edge in its outline): then a threshold halfway down to the
    # surround's mean is tried.
    sheet, _ = _sheet_at(small, threshold, edge_quantile)
    if sheet is None:
        sheet, _ = _sheet_at(small, (threshold + dark_mean) / 2, edge_quantile)
    return None if sheet is None else _erode(sheet, ERODE)


def _sheet_at(
    small: np.ndarray, threshold: float, edge_quantile: float = 0.5
) -> tuple[np.ndarray | None, bool]:
    """The filled sheet (bool, ``small``'s shape) brighter than ``threshold`` if plausible,
    else ``None``; and whether the bright region was too small to be one."""
    height, width = small.shape
    flat = small.ravel()
    bright = small > threshold
    if np.count_nonzero(bright) < MIN_SHEET * flat.size:
        return None, True
    # Cheap before labelling: the outline of a shadow or vignette is soft (measured with the
    # digit's sharp outline among it, so only clearly soft outlines are rejected here).
    if _edge_sharpness(small, bright, edge_quantile) < 0.5 * MIN_SHARPNESS * _contrast(small, bright):
        return None, False
    parts = label(bright)
    areas = np.bincount(parts.labels, minlength=parts.count)
    largest = int(np.argmax(areas))
    if areas[largest] < MIN_SHEET * flat.size:
        return None, True
    sheet = np.zeros(flat.size, dtype=bool)
    sheet[parts.pixels[parts.labels == largest]] = True
    sheet = _fill_holes(sheet.reshape(height, width))
    covered = int(np.count_nonzero(sheet))
    if covered > MAX_SHEET * flat.size or flat.size - covered < MIN_SURROUND * flat.size:
        return None, False
    # A sheet is a quadrilateral (convex, if cut by the frame): it fills most of its box;
    # a thick stroke or a loop does not.
    rows, cols = np.flatnonzero(sheet.any(axis=1)), np.flatnonzero(sheet.any(axis=0))
    if covered < MIN_BOX_FILL * (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1):
        return None, False
    # Paper is mostly paper: a light digit's filled loop (MNIST's own 0) is not a sheet.
    if np.count_nonzero(bright & sheet) < MIN_PAPER * covered:
        return None, False
    contrast = _contrast(small, sheet)
    if contrast < MIN_CONTRAST or _edge_sharpness(small, sheet, edge_quantile) < MIN_SHARPNESS * contrast:
        return None, False
    return sheet, False


def _contrast(small: np.ndarray, sheet: np.ndarray) -> float:
    """Mean inside ``sheet`` minus mean outside it."""
    inside = int(np.count_nonzero(sheet))
    if inside in (0, sheet.size):
        return 0.0
    total, within = float(small.sum()), float(small[sheet].sum())
    return within / inside - (total - within) / (sheet.size - inside)


def _otsu(values: np.ndarray, bins: int = 64) -> tuple[float, float]:
    """Otsu's threshold of ``values`` in [0, 1] (the bin edge maximising the between-class
    variance of a ``bins``-bin histogram), and the mean of the values below it."""
    counts = np.bincount(np.clip((values * bins).astype(np.int64), 0, bins - 1), minlength=bins)
    counts = counts.astype(np.float64)
    centres = (np.arange(bins) + 0.5) / bins
    weight = np.cumsum(counts)
    total = weight[-1]
    mean = np.cumsum(counts * centres)
    low, high = weight[:-1], total - weight[:-1]
    valid = (low > 0) & (high > 0)
    between = np.zeros(bins - 1)
    mu_low = np.divide(mean[:-1], low, out=np.zeros(bins - 1), where=valid)
    mu_high = np.divide(mean[-1] - mean[:-1], high, out=np.zeros(bins - 1), where=valid)
    between[valid] = low[valid] * high[valid] * (mu_low[valid] - mu_high[valid]) ** 2
    best = int(np.argmax(between))
    return float(best + 1) / bins, float(mu_low[best])


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every False region that does not touch the frame's border set True."""
    holes = label(~mask)
    if holes.count == 0:
        return mask
    height, width = mask.shape
    rows, cols = np.divmod(holes.pixels, width)
    at_border = (rows == 0) | (cols == 0) | (rows == height - 1) | (cols == width - 1)
    outer = np.zeros(holes.count, dtype=bool)
    outer[holes.labels[at_border]] = True
    filled = np.ones(mask.size, dtype=bool)
    filled[holes.pixels[outer[holes.labels]]] = False
    return filled.reshape(mask.shape)


def _edge_sharpness(small: np.ndarray, sheet: np.ndarray, quantile: float = 0.5) -> float:
    """The ``quantile`` (0.5: median), over the sheet's outline (inside the frame), of the step
    between the sample just inside and the one just outside it along the row or column."""
    steps = []
    for axis in (0, 1):
        a = small.swapaxes(0, axis)
        m = sheet.swapaxes(0, axis)
        # An outline crossing between positions i and i + 1 of this axis. The samples are
        # points ~1/64 of the frame apart: a paper edge falls between two of them, a shadow's
        # soft edge (>= ~3 % of the frame) spreads over several.
        cross = m[:-1] != m[1:]
        step = np.abs(a[1:] - a[:-1])
        steps.append(step[cross])
    values = np.concatenate(steps)
    if values.size == 0:
        return 0.0
    at = min(int(quantile * values.size), values.size - 1)
    return float(np.partition(values, at)[at])


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a (2 radius + 1) square; the frame's outside counts as False."""
    out = mask.copy()
    for _ in range(radius):
        shrunk = out.copy()
        shrunk[1:] &= out[:-1]
        shrunk[:-1] &= out[1:]
        shrunk[:, 1:] &= out[:, :-1]
        shrunk[:, :-1] &= out[:, 1:]
        shrunk[0] = shrunk[-1] = False
        shrunk[:, 0] = shrunk[:, -1] = False
        out = shrunk
    return out
