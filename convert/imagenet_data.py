"""Real images for evaluation and calibration, preprocessed exactly as the service does.

Images are decoded with the service's own ``decode_image`` (EXIF orientation applied) and
turned into tensors with its ``imagenet_tensor``, so conversion-time accuracy is the accuracy
the HTTP endpoint delivers. Data lives read-only in ``../shared/data`` (never copied).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from service.config import PROJECT_ROOT, Settings
from service.images.decode import decode_image
from service.images.preprocessing.imagenet import imagenet_tensor
from service.manifest import ImageNetPreprocessing

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
IMAGENET_DIR = SHARED_DATA / "imagenet"
CLASS_INDEX_JSON = IMAGENET_DIR / "imagenet_class_index.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_MAX_PIXELS = Settings.model_fields["max_image_pixels"].default


def class_names(index_json: Path = CLASS_INDEX_JSON) -> list[str]:
    """The 1000 readable ImageNet class names in class-index order (e.g. ``"tench"``).

    ``index_json`` is Keras's ``imagenet_class_index.json`` layout:
    ``{"0": ["n01440764", "tench"], ...}`` (the order ``decode_predictions`` uses).
    """
    index = json.loads(index_json.read_text())
    return [index[str(i)][1] for i in range(len(index))]


def labelled_images(directory: Path, limit: int = 0) -> tuple[list[Path], np.ndarray]:
    """Files and int64 class indices listed in ``directory/labels.csv`` (``file,class_index,...``).

    ``limit`` keeps the first N rows (0 = all); the file order is the CSV's order.
    """
    with (directory / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if limit:
        rows = rows[:limit]
    return [directory / r["file"] for r in rows], np.array([int(r["class_index"]) for r in rows])


def class_folders(directory: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """A directory-per-class image folder (``dir/<class>/*.jpg``), as Keras's
    ``image_dataset_from_directory`` reads it: classes are the sub-directory names, sorted.

    Returns:
        (class names, image paths sorted within each class, int64 labels).

    Raises:
        ValueError: fewer than two class directories, or a class without images.
    """
    classes = sorted(p.name for p in directory.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(f"{directory} needs at least two class sub-directories, found {classes}")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (directory / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class directory {directory / name} has no images")
        paths += files
        labels += [index] * len(files)
    return classes, paths, np.array(labels)


def preprocess_files(paths: list[Path], spec: ImageNetPreprocessing, size: tuple[int, int]) -> np.ndarray:
    """float32 (N, height, width, 3) model inputs for image files, as the service builds them."""
    batch = np.empty((len(paths), *size, 3), dtype=np.float32)
    for i, path in enumerate(paths):
        image = decode_image(path.read_bytes(), _MAX_PIXELS)
        batch[i] = imagenet_tensor(image, spec, size, 3)
    return batch
