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
from ..imaging import decode_image
from ..inference import probabilities, top_k
from ..preprocessing import preprocess
from ..registry import LoadedModel, load_registry
from ..schemas import ClassProbability, Prediction
from .files import UsageError
from .outcome import ModelProblem, Outcome, error_text


class LocalPredictor:
    """Classify image files with a model loaded from ``settings.model_dir``.

    Raises (constructor):
        UsageError: no model of that name in the directory.
        ModelProblem: the model was found but failed to load or verify.
    """

    def __init__(self, settings: Settings, model_name: str, k: int, batch_size: int) -> None:
        registry = load_registry(settings.model_dir, settings.resolved_intra_op_threads())
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
        self.workers = settings.resolved_inference_workers()

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
        """The preprocessed batch of one, or the error text (what the server would answer)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            return error_text(0, f"cannot read file: {exc.strerror or exc}")
        try:
            return preprocess(decode_image(data, self.max_pixels), self.model.manifest)
        except ServiceError as exc:
            return error_text(exc.status_code, exc.detail)
        except (ValueError, OSError) as exc:
            return error_text(400, f"image could not be converted for {self.name}: {exc}")

    def _batch(self, paths: Sequence[Path], pool: ThreadPoolExecutor) -> list[Outcome]:
        tensors = list(pool.map(self._tensor, paths))
        good = [t for t in tensors if isinstance(t, np.ndarray)]
        ranked_rows = iter(self._run(np.concatenate(good)) if good else [])
        manifest = self.model.manifest
        outcomes = []
        for path, tensor in zip(paths, tensors, strict=True):
            if isinstance(tensor, str):
                outcomes.append(Outcome(path, self.name, error=tensor))
                continue
            ranked = next(ranked_rows)
            best = ranked[0]
            prediction = Prediction(
                model=self.name,
                model_version=manifest.version,
                prediction=best.label,
                class_index=best.class_index,
                confidence=best.probability,
                top_k=[ClassProbability(label=r.label, class_index=r.class_index, probability=r.probability)
                       for r in ranked],
                for_real_predictions=manifest.for_real_predictions,
            )  # fmt: skip
            outcomes.append(Outcome(path, self.name, prediction=prediction.model_dump()))
        return outcomes

    def _run(self, batch: np.ndarray) -> list:
        manifest = self.model.manifest
        (output,) = self.model.session.run([manifest.output.name], {manifest.input.name: batch})
        probs = probabilities(output, manifest)
        return [top_k(row, manifest.labels, self.k) for row in probs]
