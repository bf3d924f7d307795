"""The models to benchmark and their real inputs, found from the served model directories.

For each model directory (``manifest.json`` + int8 ``.onnx``), the build directory
``build/models/<name>/`` may hold the fp32 ONNX file and the Keras model it was converted from.
``keras.applications`` models converted with random weights have no saved Keras file (and a
clean clone has no ``build/`` at all); the same architecture is then rebuilt (random weights,
same input and cost) and saved once under ``build/bench/keras/`` so the baseline server can
load it the way a tutorial app does. Results say which Keras model each baseline used.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from service.images.preprocessing import preprocess
from service.manifest import MANIFEST_FILENAME, ImageNetPreprocessing, ImagePreprocessing, Manifest
from tests.harness.paths import BENCH_BUILD, BUILD_MODELS, CATS_DOGS_DIR, MNIST_NPZ

PHOTOS = CATS_DOGS_DIR


@dataclass(frozen=True)
class BenchModel:
    """One model under test.

    ``upload``: a real JPEG as a user would send it; ``batch``: float32 model inputs of real
    images, preprocessed by the service's own code, shape (N, H, W, C) for NHWC models.
    """

    name: str
    directory: Path
    manifest: Manifest
    int8_path: Path
    fp32_path: Path | None
    keras_path: Path | None
    keras_note: str
    upload: bytes
    upload_name: str
    batch: np.ndarray


def discover(
    model_dirs: list[Path], build_models: tuple[Path, ...] = (BUILD_MODELS,), batch_size: int = 32
) -> list[BenchModel]:
    """A ``BenchModel`` per directory, with the inputs its preprocessing expects."""
    models = []
    for directory in model_dirs:
        manifest = Manifest.model_validate_json((directory / MANIFEST_FILENAME).read_bytes())
        # The first build root with this model's files; a model's own directory counts too.
        roots = [root / directory.name for root in build_models] + [directory]
        build_dir = next((r for r in roots if (r / f"{manifest.name}.keras").is_file()), None) or next(
            (r for r in roots if (r / f"{manifest.name}.fp32.onnx").is_file()), roots[0]
        )
        fp32 = build_dir / f"{manifest.name}.fp32.onnx"
        keras_path, note = _keras_model(manifest, build_dir)
        if isinstance(manifest.preprocessing, ImageNetPreprocessing | ImagePreprocessing):
            upload_name, upload, images = _photos(batch_size)
        else:
            upload_name, upload, images = _digits(batch_size)
        batch = np.concatenate([preprocess(image, manifest) for image in images])
        models.append(
            BenchModel(
                name=manifest.name,
                directory=directory,
                manifest=manifest,
                int8_path=directory / manifest.file,
                fp32_path=fp32 if fp32.is_file() else None,
                keras_path=keras_path,
                keras_note=note,
                upload=upload,
                upload_name=upload_name,
                batch=batch,
            )
        )
    return models


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _digits(count: int) -> tuple[str, bytes, list[Image.Image]]:
    """MNIST test digits: the first one as a JPEG upload, ``count`` of them as images."""
    with np.load(MNIST_NPZ) as data:
        digits = data["x_test"][:count]
    images = [Image.fromarray(d) for d in digits]
    return "mnist_test_0.jpg", _jpeg(images[0]), images


def _photos(count: int) -> tuple[str, bytes, list[Image.Image]]:
    """Real photos (cats and dogs, original JPEG files); the first cat is the upload."""
    cats = sorted((PHOTOS / "cats").glob("*.jpg"))[: count // 2]
    dogs = sorted((PHOTOS / "dogs").glob("*.jpg"))[: count - len(cats)]
    images = [Image.open(p).convert("RGB") for p in cats + dogs]
    return cats[0].name, cats[0].read_bytes(), images


def _keras_model(manifest: Manifest, build_dir: Path) -> tuple[Path | None, str]:
    saved = build_dir / f"{manifest.name}.keras"
    if saved.is_file():
        return saved, "the Keras model the ONNX files were converted from"
    rebuilt = BENCH_BUILD / "keras" / f"{manifest.name}.keras"
    if rebuilt.is_file():
        return rebuilt, "same architecture rebuilt, random weights (speed only)"
    import keras  # only here: the benchmark parent needs TensorFlow for the warm runs anyway

    keras.utils.set_random_seed(0)
    architecture = _keras_application(manifest.name)
    if architecture is not None:
        constructor, alpha = architecture
        kwargs = {"alpha": alpha} if alpha is not None else {}
        model = getattr(keras.applications, constructor)(weights=None, **kwargs)
    elif manifest.name == "mnist":  # a clean clone has no build/: same CNN, untrained
        from convert.mnist import build_cnn

        model = build_cnn()
    else:
        return None, "no Keras model found: baseline not measured"
    rebuilt.parent.mkdir(parents=True, exist_ok=True)
    model.save(rebuilt)
    return rebuilt, "same architecture rebuilt, random weights (speed only)"


def _keras_application(name: str) -> tuple[str, float | None] | None:
    """(constructor, alpha) for a model named like convert's keras-app default ``arch[_alpha]``."""
    from convert.keras_apps import ARCHITECTURES

    if name in ARCHITECTURES:
        return ARCHITECTURES[name].constructor, None
    base, _, suffix = name.rpartition("_")
    try:
        alpha = float(suffix)
    except ValueError:
        return None
    return (ARCHITECTURES[base].constructor, alpha) if base in ARCHITECTURES else None
