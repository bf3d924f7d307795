"""Connected components of a small boolean mask, in numpy (no SciPy on the serving path).

The mask's ink is first cut into runs (maximal horizontal stretches of True pixels in one row);
two runs in neighbouring rows touch, with 8-connectivity, when their column spans overlap or
meet at a corner. The runs are then joined by union-find with vectorised hooking and pointer
jumping: each round links every pair of touching trees (the larger root under the smaller),
then compresses every path; it stops when no pair joins two trees. A digit's mask at the
working resolution (a few thousand ink pixels, a few hundred runs) takes well under a
millisecond, and every temporary is the size of the ink, not of the image: in a worker thread
each array above 64 KiB is fresh pages on every call (``service.images.allocator``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Components:
    """Components of a mask.

    Attributes:
        pixels: int64 (K,) flat indices of the mask's True pixels (row-major).
        labels: int64 (K,) component of each pixel, 0..count-1, numbered in the order of
            each component's first pixel (as ``np.unique`` of any labelling would).
        count: number of components.
    """

    pixels: np.ndarray
    labels: np.ndarray
    count: int


def label(mask: np.ndarray) -> Components:
    """Label the 8-connected components of a 2-D boolean ``mask``."""
    width = mask.shape[1]
    pixels = np.flatnonzero(mask)
    if pixels.size == 0:
        return Components(pixels, pixels.copy(), 0)
    # A run starts where the previous ink pixel is not its left neighbour in the same row.
    starts_here = np.ones(pixels.size, dtype=bool)
    starts_here[1:] = (pixels[1:] != pixels[:-1] + 1) | (pixels[1:] % width == 0)
    run_of_pixel = np.cumsum(starts_here) - 1
    first = np.flatnonzero(starts_here)
    starts = pixels[first]
    ends = np.append(pixels[first[1:] - 1], pixels[-1])  # inclusive
    below, above = _touching_runs(starts, ends, width)
    roots = _union_find(starts.size, below, above)
    # Roots point at themselves and are each component's first run; numbering them in run
    # order (a cumulative count, not a sort) numbers components by their first pixel.
    is_root = roots == np.arange(starts.size)
    rank = np.cumsum(is_root) - 1
    return Components(pixels, rank[roots][run_of_pixel], int(rank[-1]) + 1)


def _touching_runs(starts: np.ndarray, ends: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (run, run in the next row that touches it): int64 (P,) and (P,).

    ``starts`` and ``ends`` are the runs' first and last flat indices, in raster order. A run
    spanning columns [s, e] of row y touches the runs of row y + 1 that end at or after column
    s - 1 and start at or before column e + 1 (clamped to the row): a contiguous range of runs,
    found by two sorted searches.
    """
    row_below = (starts // width + 1) * width
    low = np.searchsorted(ends, row_below + np.maximum(starts % width - 1, 0), side="left")
    high = np.searchsorted(starts, row_below + np.minimum(ends % width + 1, width - 1), side="right")
    counts = np.maximum(high - low, 0)
    total = int(counts.sum())
    upper = np.repeat(np.arange(starts.size), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return upper, np.repeat(low, counts) + offsets


def _union_find(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Root of each of ``n`` nodes joined by the edges (first[i], second[i]): int64 (n,), each
    root being the smallest node of its tree."""
    parent = np.arange(n)
    while True:
        pa, pb = parent[first], parent[second]
        apart = pa != pb
        if not apart.any():
            return parent
        low, high = np.minimum(pa[apart], pb[apart]), np.maximum(pa[apart], pb[apart])
        parent[high] = low  # several writes to one root: any wins, the rest link next round
        while True:  # pointer jumping: every node points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
