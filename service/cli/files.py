"""Which files to classify: paths, folders (recursive) and globs; and each image's true class.

The true class comes from the folder layout ``ROOT/<class>/.../image`` when every image under a
folder given on the command line sits in a sub-folder named like one of the model's labels.
Names are compared case-insensitively with ``-`` and spaces read as ``_``, and a plural folder
matches a singular label (``cats/`` -> ``cat``, ``boxes/`` -> ``box``) as image data sets are
often laid out (e.g. Kaggle's cats vs dogs): exact matches win over plural ones.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

# Extensions of the formats the service decodes (service.images.decode.ALLOWED_FORMATS).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
_GLOB_CHARS = frozenset("*?[")


class UsageError(Exception):
    """A path that does not exist or a glob that matches nothing (exit status 2)."""


@dataclass
class Found:
    """Images to classify in order, files skipped as non-images, and folder roots per image."""

    images: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    roots: dict[Path, Path] = field(default_factory=dict)  # image -> folder argument it came from


def find_images(arguments: list[str]) -> Found:
    """Expand command-line PATH arguments into image files (sorted within a folder or glob).

    Raises:
        UsageError: an argument is neither an existing path nor a glob matching something.
    """
    found = Found()
    seen: set[Path] = set()

    def add(path: Path, root: Path | None) -> None:
        resolved = path.resolve()
        if resolved in seen:
            return
        seen.add(resolved)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            found.images.append(path)
            if root is not None:
                found.roots[path] = root
        else:
            found.skipped.append(path)

    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                add(child, path)
        elif path.is_file():
            add(path, None)
        elif _GLOB_CHARS & set(argument):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise UsageError(f"no file matches {argument!r}")
            for match in files:
                add(match, None)
        else:
            raise UsageError(f"no such file or folder: {argument}")
    return found


def _normal(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def label_for_folder(folder: str, labels: list[str]) -> str | None:
    """The label a class folder names (exact, then plural -> singular), or None."""
    by_name = {_normal(label): label for label in labels}
    name = _normal(folder)
    if name in by_name:
        return by_name[name]
    for suffix in ("es", "s"):
        if name.endswith(suffix) and name[: -len(suffix)] in by_name:
            return by_name[name[: -len(suffix)]]
    return None


def true_labels(found: Found, labels: list[str]) -> dict[Path, str]:
    """Image -> true label, for the folder arguments laid out one sub-folder per class.

    A folder argument counts only when EVERY image under it is in a sub-folder that names a
    label; otherwise (loose images, unknown folder names) none of its images get a truth.
    """
    by_root: dict[Path, list[Path]] = {}
    for image, root in found.roots.items():
        by_root.setdefault(root, []).append(image)
    truths: dict[Path, str] = {}
    for root, images in by_root.items():
        mapped: dict[Path, str] = {}
        for image in images:
            parts = image.relative_to(root).parts
            label = label_for_folder(parts[0], labels) if len(parts) > 1 else None
            if label is None:
                break
            mapped[image] = label
        else:
            truths.update(mapped)
    return truths
