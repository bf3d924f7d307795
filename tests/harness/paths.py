"""Repository and shared-data paths, in one place for tests/ and benchmarks/.

``SHARED_DATA`` is ``../shared/data`` beside the clone unless the ``SHARED_DATA`` environment
variable points elsewhere (see /work/shared/README.md for what it holds).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_MODELS = PROJECT_ROOT / "models_onnx"
BUILD = PROJECT_ROOT / "build"
BUILD_MODELS = BUILD / "models"
BENCH_BUILD = BUILD / "bench"

SHARED_DATA = Path(os.environ.get("SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
MNIST_NPZ = SHARED_DATA / "mnist" / "mnist.npz"
KERAS_WEIGHTS = SHARED_DATA / "keras_weights"
CATS_DOGS_DIR = SHARED_DATA / "cats_vs_dogs"
IMAGENET_VAL = SHARED_DATA / "imagenet" / "val"
IMAGENET_CALIB = SHARED_DATA / "imagenet" / "calib"
