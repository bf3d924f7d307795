"""Summary statistics used by every benchmark."""

from __future__ import annotations

import numpy as np


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation, numpy's default), NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")
