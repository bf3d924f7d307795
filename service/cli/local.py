"""In-process prediction: the server's registry, decoding, preprocessing and batching, no HTTP.

Imported only when ``edge-infer`` runs without ``--url`` (it loads ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..config import Settings
from ..errors import ServiceError
from ..prediction import classify_batch, prepare, respond
from ..registry import LoadedModel, load_registry
from .files import UsageError
from .outcome import ModelProblem, Outcome, error_text


class LocalPredictor:
    """Classify image files with a model loaded from ``settings.model_dir``.

    The steps are the server's own (``service.prediction``): ``prepare`` (decode, limits,
    preprocessing) per file, then ``classify_batch`` (one ONNX Runtime call for the good files
    of a batch) and ``respond`` (the same prediction object as the HTTP answer). Files are
    prepared on the thread plan's workers; batches run one after another.

    Raises (constructor):
        UsageError: no model of that name in the directory.
        ModelProblem: the model was found but failed to load or verify.
    """

    def __init__(self, settings: Settings, model_name: str, k: int, batch_size: int) -> None:
        threads = settings.thread_plan()
        registry = load_registry(settings.model_dir, threads.intra_op_threads)
        found = registry.get(model_name)
        if found is None:
            known = ", ".join(sorted(registry.ready)) or "none"
            raise UsageError(f"no model named {model_name!r} in {settings.model_dir} (models: {known})")
        if not isinstance(found, LoadedModel):
            raise ModelProblem(f"model {model_name!r} is not available: {found.reason}")
        self.model = found
        self.k = k
        self.batch_size = batch_size
        self.max_pixels = settings.max_image_pixels
        self.workers = threads.workers

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def labels(self) -> list[str]:
        return list(self.model.manifest.labels)

    def predict(self, paths: Sequence[Path], done: Callable[[int], None]) -> list[Outcome]:
        """One Outcome per path, in order; ``done(n)`` after each batch of n."""
        outcomes: list[Outcome] = []
        with ThreadPoolExecutor(self.workers) as pool:
            for start in range(0, len(paths), self.batch_size):
                chunk = paths[start : start + self.batch_size]
                outcomes += self._batch(chunk, pool)
                done(len(chunk))
        return outcomes

    def _tensor(self, path: Path) -> np.ndarray | str:
        """float32 (1, *sample_shape) for one file, or the error text the server would answer."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            return error_text(0, f"cannot read file: {exc.strerror or exc}")
        try:
            return prepare(self.model, data, self.max_pixels)
        except ServiceError as exc:
            if exc.status_code >= 500:  # the model's fault, not the file's: stop
                raise
            return error_text(exc.status_code, exc.detail)

    def _batch(self, paths: Sequence[Path], pool: ThreadPoolExecutor) -> list[Outcome]:
        tensors = list(pool.map(self._tensor, paths))
        good = [t for t in tensors if isinstance(t, np.ndarray)]
        rankings = iter(classify_batch(self.model, good, self.k) if good else [])
        outcomes = []
        for path, tensor in zip(paths, tensors, strict=True):
            if isinstance(tensor, str):
                outcomes.append(Outcome(path, self.name, error=tensor))
            else:
                prediction = respond(self.model, next(rankings))
                outcomes.append(Outcome(path, self.name, prediction=prediction.model_dump()))
        return outcomes
