"""How a raw model output becomes the predicted class, as the baseline server decides it."""

from __future__ import annotations

import numpy as np

from service.manifest import Manifest


def top1(scores: np.ndarray, manifest: Manifest) -> tuple[int, float]:
    """(class index, confidence) from one row of model output.

    ``sigmoid`` outputs hold the probability of ``labels[1]``; ``softmax`` and ``logits`` rows
    are ranked by argmax (a softmax does not change the order).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if manifest.output.kind == "sigmoid":
        index = int(scores[0] > 0.5)
        return index, float(scores[0] if index else 1.0 - scores[0])
    index = int(np.argmax(scores))
    return index, float(scores[index])
