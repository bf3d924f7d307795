"""In-process prediction: the server's registry and engine (``service.engine``), no HTTP.

Imported only when ``edge-infer`` runs without ``--url`` (it loads ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from service.api.schemas import Prediction
from service.cli.files import UsageError
from service.cli.outcome import ModelProblem, Outcome, error_text
from service.config import Settings
from service.engine.pipeline import EncodedImages, classify
from service.engine.registry import load_registry
from service.errors import ModelNotFound, ModelUnavailable


class LocalPredictor:
    """Classify image files with a model loaded from ``settings.model_dir``, as the server does.

    Each batch of files goes through the engine's chain as the batch route does
    (``service.engine.pipeline.classify``: decode, limits and preprocessing per file, a bad file
    keeping its error; the good ones through ONNX Runtime in chunks of ``settings.batch_chunk``),
    then the same prediction object as the HTTP answer (``service.api.schemas.Prediction``). Batches
    run on the thread plan's inference workers, as concurrent requests would on the server.

    Raises (constructor):
        UsageError: no model of that name in the directory.
        ModelProblem: the model was found but failed to load or verify.
    """

    def __init__(self, settings: Settings, model_name: str, k: int, batch_size: int) -> None:
        threads = settings.thread_plan(batching=False)  # its workers run ONNX Runtime themselves
        registry = load_registry(settings.model_dir, threads.intra_op_threads)
        try:
            self.model = registry.require(model_name)
        except ModelNotFound as exc:
            raise UsageError(f"{exc.detail} (in {settings.model_dir})") from None
        except ModelUnavailable as exc:
            raise ModelProblem(str(exc.detail)) from None
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
        inputs = EncodedImages([contents[p] for p in files])
        classified = classify(self.model, inputs, self.k, max_pixels=self.max_pixels, chunk=self.chunk)
        for path, result in zip(files, classified.outcomes, strict=True):
            if result.error is not None:
                outcomes[path] = Outcome(
                    path, self.name, error=error_text(result.error.status_code, result.error.detail)
                )
            else:
                assert result.ranking is not None
                prediction = Prediction.of(self.model, result.ranking).model_dump()
                outcomes[path] = Outcome(path, self.name, prediction=prediction)
        return [outcomes[path] for path in paths]
