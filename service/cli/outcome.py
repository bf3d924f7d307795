"""One image's result, shared by the in-process and HTTP predictors and the writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """``prediction`` is the service's prediction object (as JSON); ``error`` says why not."""

    path: Path
    model: str
    prediction: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None


class ModelProblem(Exception):
    """The model or server cannot serve (exit status 1), e.g. unavailable model, no connection."""


def error_text(status: int, detail: object) -> str:
    """``"415: not an image ..."``: the HTTP status (or 0 for no answer) and the API's detail."""
    text = detail if isinstance(detail, str) else repr(detail)
    return f"{status}: {text}"
