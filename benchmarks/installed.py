"""Installed size on disk: a directory tree, or the TensorFlow baseline's Python distributions."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

# What the tutorial baseline installs: TensorFlow (CPU build) and the web stack around it.
BASELINE_ROOTS = ("tensorflow-cpu", "fastapi", "uvicorn", "pillow", "python-multipart")


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def baseline_bytes(roots: tuple[str, ...] = BASELINE_ROOTS) -> int:
    """Bytes of the installed files of ``roots`` and everything they require (no extras).

    Read from the running environment's distribution metadata (``RECORD``), so it is what
    ``pip install tensorflow-cpu fastapi uvicorn pillow python-multipart`` put on disk here.
    """
    seen: set[str] = set()
    pending = [_canonical(r) for r in roots]
    total = 0
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            located = Path(dist.locate_file(file))
            if located.is_file():
                total += located.stat().st_size
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            pending.append(_canonical(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return total
