"""Writing results: CSV, JSON Lines, or a table for people; and the closing summary."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from service.cli.outcome import Outcome

CSV_COLUMNS = ("path", "model", "prediction", "class_index", "confidence", "error")
OUTPUT_SUFFIXES = (".csv", ".jsonl")


def _answer(prediction: dict) -> str:
    """The predicted class label, or the number read (``--number``)."""
    return str(prediction.get("number", prediction.get("prediction", "")))


def write_csv(outcomes: Sequence[Outcome], stream: TextIO) -> None:
    """Columns ``path,model,prediction,class_index,confidence,error``; empty cells where n/a."""
    writer = csv.writer(stream)
    writer.writerow(CSV_COLUMNS)
    for o in outcomes:
        p = o.prediction or {}
        writer.writerow(
            [str(o.path), o.model, _answer(p), p.get("class_index", ""), p.get("confidence", ""),
             o.error or ""]
        )  # fmt: skip


def write_jsonl(outcomes: Sequence[Outcome], stream: TextIO) -> None:
    """One object per image: ``path``, the prediction object (with ``top_k``) or ``model`` +
    ``error``."""
    for o in outcomes:
        record = {"path": str(o.path), **(o.prediction or {"model": o.model}), "error": o.error}
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_file(outcomes: Sequence[Outcome], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        if path.suffix.lower() == ".csv":
            write_csv(outcomes, stream)
        else:
            write_jsonl(outcomes, stream)


def write_table(outcomes: Sequence[Outcome], stream: TextIO) -> None:
    """Aligned columns: path, prediction, confidence (%), and an error column when one failed."""
    rows = [
        (str(o.path), _answer(o.prediction), f"{o.prediction['confidence'] * 100:.1f} %", "")
        if o.prediction
        else (str(o.path), "-", "-", o.error or "")
        for o in outcomes
    ]
    header = ("path", "prediction", "confidence", "error" if any(not o.ok for o in outcomes) else "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        line = f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}"
        stream.write(line.rstrip() + "\n")


@dataclass(frozen=True)
class Summary:
    images: int
    failures: int
    seconds: float
    correct: int
    judged: int

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None


def summarize(outcomes: Sequence[Outcome], truths: dict[Path, str], seconds: float) -> Summary:
    """Counts; accuracy over the images with a true label (failed images count as wrong)."""
    judged = [o for o in outcomes if o.path in truths]
    correct = sum(1 for o in judged if o.prediction and _answer(o.prediction) == truths[o.path])
    failures = sum(1 for o in outcomes if not o.ok)
    return Summary(len(outcomes), failures, seconds, correct, len(judged))


def format_summary(summary: Summary, model: str, mode: str) -> str:
    lines = [
        f"model: {model} ({mode})",
        f"images: {summary.images}, failures: {summary.failures}, "
        f"{summary.seconds:.1f} s, {summary.images_per_second:.1f} images/s",
    ]
    if summary.accuracy is not None:
        lines.append(
            f"accuracy: {summary.accuracy:.4f} ({summary.correct}/{summary.judged}, "
            "true classes from folder names)"
        )
    return "\n".join(lines)
