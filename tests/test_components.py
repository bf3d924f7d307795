"""service.images.preprocessing.components.label against a breadth-first flood fill, on random masks.

The digit normaliser keeps or drops whole components, so a merged or split component changes
which ink reaches the model; the run-based union-find must give exactly the 8-connected
components, numbered by their first pixel in raster order.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from service.images.preprocessing.components import label


def flood_fill_labels(mask: np.ndarray) -> np.ndarray:
    """8-connected labels by breadth-first search from each unlabelled pixel in raster order:
    int (h, w), -1 off the mask."""
    height, width = mask.shape
    labels = np.full(mask.shape, -1)
    count = 0
    for y, x in zip(*np.nonzero(mask), strict=True):
        if labels[y, x] >= 0:
            continue
        labels[y, x] = count
        queue = deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            for ny in range(max(cy - 1, 0), min(cy + 2, height)):
                for nx in range(max(cx - 1, 0), min(cx + 2, width)):
                    if mask[ny, nx] and labels[ny, nx] < 0:
                        labels[ny, nx] = count
                        queue.append((ny, nx))
        count += 1
    return labels


@settings(max_examples=300, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24))))
def test_label_matches_flood_fill(mask: np.ndarray) -> None:
    parts = label(mask)
    expected = flood_fill_labels(mask)
    assert np.array_equal(parts.pixels, np.flatnonzero(mask))
    assert np.array_equal(parts.labels, expected.ravel()[parts.pixels])
    assert parts.count == expected.max() + 1


def test_corner_touching_strokes_are_one_component() -> None:
    # A thin diagonal stroke touches only at corners once downsampled: one component. A run
    # at the right edge does not join the next row's first pixel (adjacent flat indices), and
    # a one-pixel gap separates.
    mask = np.zeros((8, 8), dtype=bool)
    mask[[4, 5, 6, 7], [2, 3, 4, 5]] = True  # diagonal
    mask[[0, 1], [7, 7]] = True  # right edge, two rows
    mask[2, 0] = True  # flat index right after (1, 7)
    mask[7, 7] = True  # one pixel right of a gap after (7, 5)
    parts = label(mask)
    labels = {int(p): int(c) for p, c in zip(parts.pixels, parts.labels, strict=True)}
    assert parts.count == 4
    assert labels[7] == labels[15] == 0
    assert labels[16] == 1
    assert labels[34] == labels[43] == labels[52] == labels[61] == 2
    assert labels[63] == 3


def test_empty_mask_has_no_components() -> None:
    parts = label(np.zeros((5, 7), dtype=bool))
    assert parts.count == 0 and parts.pixels.size == 0 and parts.labels.size == 0
