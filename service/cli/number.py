"""``edge-infer predict --number``: read a number from each photo, in-process or over HTTP.

Each file goes through the number route's own engine chain (``service.engine.numbers``: decode
at full size, cut into digits, one ONNX Runtime batch per photo), locally, or as one
``POST /models/{name}/number`` per file with ``--url``. The record of each file is that
route's answer (``number``, ``confidence``, ``digits`` with boxes); the table shows the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from service.api.schemas import NumberReading
from service.cli.files import UsageError
from service.cli.local import LocalPredictor
from service.cli.outcome import Outcome, error_text
from service.cli.remote import RemotePredictor
from service.engine.numbers import not_a_digit_model, read_number
from service.errors import ServiceError


def number_truths(images: Sequence[Path]) -> dict[Path, str]:
    """Image -> the number it shows, for images in a folder named by digits only ("2024/")."""
    return {image: image.parent.name for image in images if image.parent.name.isdigit()}


class LocalNumberReader(LocalPredictor):
    """Read numbers with a digit model loaded from ``settings.model_dir``.

    Raises (constructor): as ``LocalPredictor``, and UsageError for a model that is not a
    digit model.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        refusal = not_a_digit_model(self.model)
        if refusal:
            raise UsageError(f"--number needs a digit model: {refusal}")

    def _batch(self, paths: Sequence[Path]) -> list[Outcome]:
        return [self._read(path) for path in paths]

    def _read(self, path: Path) -> Outcome:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return Outcome(path, self.name, error=error_text(0, f"cannot read file: {exc}"))
        try:
            read = read_number(self.model, data, self.max_pixels, self.k)
        except ServiceError as exc:
            return Outcome(path, self.name, error=error_text(exc.status_code, exc.detail))
        return Outcome(path, self.name, prediction=NumberReading.of(self.model, read.digits).model_dump())


class RemoteNumberReader(RemotePredictor):
    """Read numbers with a digit model served at ``url``: one request per file."""

    def _batch(self, uploads: list[tuple[Path, bytes]]) -> list[tuple[Path, Outcome]]:
        return [(path, self._number(path, data)) for path, data in uploads]

    def _number(self, path: Path, data: bytes) -> Outcome:
        answer = self._post_file("number", path, data)
        return answer if isinstance(answer, Outcome) else Outcome(path, self.name, prediction=answer)
