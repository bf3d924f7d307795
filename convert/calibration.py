"""Calibration data for ONNX Runtime static quantization."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from onnxruntime.quantization import CalibrationDataReader


class ArrayCalibrationReader(CalibrationDataReader):
    """Feeds preprocessed images, ``batch_size`` at a time, to the calibrator; rewindable.

    Every batch has the same size (a ragged remainder is dropped; ``len(reader.images)`` is the
    count used): ONNX Runtime's histogram calibrators (entropy, percentile) stack the batches
    and fail on a short last one.

    Args:
        images: float32 array (N, ...) already preprocessed exactly as the service will.
        input_name: the model's input name (read from the model, not hard-coded).
        batch_size: images per calibration batch.
    """

    def __init__(self, images: np.ndarray, input_name: str, batch_size: int = 32) -> None:
        if images.dtype != np.float32 or images.ndim < 2 or len(images) == 0:
            raise ValueError(f"need a non-empty float32 batch array, got {images.dtype} {images.shape}")
        batch_size = min(batch_size, len(images))
        self.images = images[: len(images) // batch_size * batch_size]
        self.input_name = input_name
        self.batch_size = batch_size
        self._batches: Iterator[dict[str, np.ndarray]] = iter(())
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = (
            {self.input_name: self.images[i : i + self.batch_size]}
            for i in range(0, len(self.images), self.batch_size)
        )
