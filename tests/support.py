"""Test helpers: real data from ../shared, real images, and a real uvicorn server.

Paths and the server process plumbing are shared with the benchmarks (``tests.harness.paths``,
``tests.harness.servers``): the benchmarks import the harness, nothing in tests/ imports benchmarks/.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.harness.paths import (
    BUNDLED_MODELS,
    CATS_DOGS_DIR,
    IMAGENET_CALIB,
    IMAGENET_VAL,
    KERAS_WEIGHTS,
    MNIST_NPZ,
    PROJECT_ROOT,
    SHARED_DATA,
)
from tests.harness.servers import Server, free_port, service_server

__all__ = [
    "BUNDLED_MODELS",
    "MNIST_NPZ",
    "PROJECT_ROOT",
    "SHARED_DATA",
    "RunningServer",
    "encode",
    "free_port",
    "mnist_test_digits",
    "require_shared_data",
    "running_server",
    "uvicorn_server",
]

RunningServer = Server


# What tests read from ../shared/data (see ../shared/README.md).
SHARED_DATA_SETS = (MNIST_NPZ, CATS_DOGS_DIR, IMAGENET_VAL, IMAGENET_CALIB, KERAS_WEIGHTS)


def require_shared_data(*paths: Path) -> None:
    """Skip the calling test -- or, called at import, its whole module -- when any of ``paths``
    (default: every data set in ``SHARED_DATA_SETS``) is absent, saying which; under CI=true
    fail instead (CI always has the data beside the clone, so a skip there would hide a broken
    set-up).

    Raises:
        pytest.skip.Exception / pytest.fail.Exception: the data is missing.
    """
    missing = [path for path in paths or SHARED_DATA_SETS if not path.exists()]
    if not missing:
        return
    reason = (
        f"real test data missing: {', '.join(map(str, missing))} (../shared must sit beside the clone, "
        "or SHARED_DATA point at its data/ folder)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def mnist_test_digits(count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` MNIST test digits: uint8 (N, 28, 28), labels uint8 (N,).

    Skips (fails under CI=true) when MNIST is absent: see ``require_shared_data``.
    """
    require_shared_data(MNIST_NPZ)
    with np.load(MNIST_NPZ) as data:
        return data["x_test"][:count], data["y_test"][:count]


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **save_args) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def lambda_child(script: str, *args: str, model_dir: Path) -> dict:
    """Run ``script`` in a fresh interpreter set up as a Lambda environment would be (function
    name set, models from ``model_dir``, warnings-only logs) and return the JSON object it
    prints last. Fails the test with the child's stderr when it exits non-zero."""
    env = {
        **os.environ,
        "EDGE_MODEL_DIR": str(model_dir),
        "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
        "EDGE_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def heic_bytes(
    image: Image.Image, quality: int = 90, append_images: tuple[Image.Image, ...] = (), **save_args
) -> bytes:
    """``image`` (then ``append_images``, a sequence) as a HEIC file, written by pillow-heif's
    x265 encoder (a test-only dependency); ``save_args`` as ``HeifFile.save`` takes them (e.g.
    ``exif``). Its opener is *not* registered, so what decodes the bytes is the service's pi-heif.
    """
    import pillow_heif

    heif_file = pillow_heif.from_pillow(image)
    for other in append_images:
        heif_file.add_from_pillow(other)
    buffer = io.BytesIO()
    heif_file.save(buffer, quality=quality, **save_args)
    return buffer.getvalue()


@contextlib.contextmanager
def running_server(
    model_dir: Path = BUNDLED_MODELS, *, uvicorn_args: tuple[str, ...] = (), **env: str
) -> Iterator[Server]:
    """Run ``uvicorn service.app:app`` on a free loopback port until healthy; stop it after.

    ``uvicorn_args`` are extra uvicorn options, ``env`` adds ``EDGE_*`` settings. Output goes to
    a temporary file (``server.log_lines()``). Stopped with SIGTERM (graceful shutdown).
    """
    with tempfile.TemporaryDirectory(prefix="uvicorn-log-") as tmp:
        log_path = Path(tmp) / "server.log"
        with service_server(model_dir, env=env, uvicorn_args=uvicorn_args, log_path=log_path) as server:
            yield server


@contextlib.contextmanager
def uvicorn_server(model_dir: Path = BUNDLED_MODELS, **env: str) -> Iterator[str]:
    """``running_server``, yielding only its URL."""
    with running_server(model_dir, **env) as server:
        yield server.url
