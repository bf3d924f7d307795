"""In-process prediction: the server's registry, decoding, preprocessing and batching, no HTTP.

Imported only when ``edge-infer`` runs without ``--url`` (it loads ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..batching import classify_files
from ..config import Settings
from ..inference import top_k
from ..prediction import respond
from ..registry import LoadedModel, load_registry
from .files import UsageError
from .outcome import ModelProblem, Outcome, error_text


class LocalPredictor:
    """Classify image files with a model loaded from ``settings.model_dir``, as the server does.

    Each batch of files goes through the batch route's own steps: ``service.batching.
    classify_files`` (decode, limits and preprocessing per file, a bad file keeping its error;
    the good ones through ONNX Runtime in chunks of ``settings.batch_chunk``), then the same
    ranking and prediction object as the HTTP answer (``service.prediction.respond``). Batches
    run on the thread plan's inference workers, as concurrent requests would on the server.

    Raises (constructor):
        UsageError: no model of that name in the directory.
        ModelProblem: the model was found but failed to load or verify.
    """

    def __init__(self, settings: Settings, model_name: str, k: int, batch_size: int) -> None:
        threads = settings.thread_plan(batching=False)  # its workers run ONNX Runtime themselves
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
        self.chunk = settings.batch_chunk
        self.workers = threads.workers

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def labels(self) -> list[str]:
        return list(self.model.manifest.labels)

    def predict(self, paths: Sequence[Path], done: Callable[[int], None]) -> list[Outcome]:
        """One Outcome per path, in order; ``done(n)`` after each batch of n."""
        chunks = [paths[i : i + self.batch_size] for i in range(0, len(paths), self.batch_size)]
        outcomes: list[Outcome] = []
        with ThreadPoolExecutor(self.workers) as pool:
            for chunk, answered in zip(chunks, pool.map(self._batch, chunks), strict=True):
                outcomes += answered
                done(len(chunk))
        return outcomes

    def _batch(self, paths: Sequence[Path]) -> list[Outcome]:
        contents: dict[Path, bytes] = {}
        outcomes: dict[Path, Outcome] = {}
        for path in paths:
            try:
                contents[path] = path.read_bytes()
            except OSError as exc:
                outcomes[path] = Outcome(path, self.name, error=error_text(0, f"cannot read file: {exc}"))
        files = list(contents)
        results = classify_files(self.model, [contents[p] for p in files], self.max_pixels, self.chunk)
        for path, result in zip(files, results, strict=True):
            if result.error is not None:
                outcomes[path] = Outcome(
                    path, self.name, error=error_text(result.error.status_code, result.error.detail)
                )
            else:
                assert result.probabilities is not None
                ranked = top_k(result.probabilities, self.model.manifest.labels, self.k)
                outcomes[path] = Outcome(path, self.name, prediction=respond(self.model, ranked).model_dump())
        return [outcomes[path] for path in paths]
