"""Build the seed models ONCE per test session, with the real command line, on real data.

Sizes are cut for CI (2 CPU cores; the whole build adds a few minutes): fewer calibration
images, fewer timed latency runs, and 32 parity images for the random-weight architectures. The
cats-vs-dogs model is trained on the full photo set (a 480-photo slice measured 96.6 %: too
few to prove the 97 % bar). Full-quality builds: ``make models``.
Register with ``pytest_plugins = ["tests.seed_models"]`` or import the fixture.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.paths import BUNDLED_MODELS, KERAS_WEIGHTS, PROJECT_ROOT

from .support import require_shared_data

# (model name, command-line arguments after ``python -m convert``)
CATS_DOGS_VALIDATION_FRACTION = 0.4
SEED = 1234
BUILDS: dict[str, list[str]] = {
    "cats_vs_dogs": [
        "cats-vs-dogs", "--validation-fraction", str(CATS_DOGS_VALIDATION_FRACTION), "--seed", str(SEED),
        "--calibration-images", "100", "--latency-runs", "5",
    ],
    "mobilenet_0.75": [
        "keras-app", "mobilenet", "--alpha", "0.75",
        "--weights", str(KERAS_WEIGHTS / "mobilenet_0.75_224.h5"),
        "--calibration-images", "200", "--latency-runs", "5",
    ],
    "resnet50": [
        "keras-app", "resnet50", "--weights", "none",
        "--eval-images", "32", "--calibration-images", "32", "--latency-runs", "3",
    ],
    "mobilenet_v2": [
        "keras-app", "mobilenet_v2", "--weights", "none",
        "--eval-images", "32", "--calibration-images", "32", "--latency-runs", "3",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class SeedModels:
    """Where the session's builds went: ``build/<name>/`` (all files), ``served/<name>/`` (int8)."""

    build: Path
    served: Path
    logs: dict[str, str]

    def build_dir(self, name: str) -> Path:
        return self.build / name


@pytest.fixture(scope="session")
def seed_models(tmp_path_factory: pytest.TempPathFactory) -> SeedModels:
    """Run ``python -m convert`` for every seed model and publish them side by side.

    The digit model from ``models_onnx/mnist`` is served alongside when present, so the
    service's default model answers too.
    """
    require_shared_data(KERAS_WEIGHTS)
    root = tmp_path_factory.mktemp("seed_models")
    build, served = root / "build", root / "served"
    logs = {}
    for name, args in BUILDS.items():
        command = [
            sys.executable,
            "-m",
            "convert",
            *args,
            "--out",
            str(build / name),
            "--publish",
            str(served),
        ]
        result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"{name} build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        logs[name] = result.stdout
    if (BUNDLED_MODELS / "mnist" / "manifest.json").is_file():
        shutil.copytree(BUNDLED_MODELS / "mnist", served / "mnist")
    return SeedModels(build=build, served=served, logs=logs)
