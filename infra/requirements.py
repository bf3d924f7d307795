"""The runtime requirements of the package, pinned from ``uv.lock`` and cut to what serving loads.

``uv export`` gives the locked dependency closure of the runtime (optionally plus an extra such
as ``server`` = uvicorn). A few distributions in that closure are declared dependencies that
the serving path never imports; they are left out here and installed with ``--no-deps``, which
keeps them out of the package. The fresh-interpreter test (tests/test_lambda_package.py) imports
the handler and serves real requests from the package alone, so a wrong entry here fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Declared by onnxruntime for its tools (model conversion, transformers optimizer, protobuf
# model editing); ``import onnxruntime`` and InferenceSession never import them (checked:
# after ``import onnxruntime`` none of google.protobuf, flatbuffers, packaging is in sys.modules).
NOT_LOADED_BY_SERVING = frozenset({"protobuf", "flatbuffers", "packaging"})


def uv_command() -> list[str]:
    """How to run uv: ``$UV``, then ``uv`` on PATH, then ``python -m uv``."""
    if os.environ.get("UV"):
        return os.environ["UV"].split()
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def locked_requirements(
    extras: tuple[str, ...] = (), exclude: frozenset[str] = NOT_LOADED_BY_SERVING
) -> list[str]:
    """Pinned ``name==version ; marker`` lines of the runtime (plus ``extras``) from uv.lock.

    Raises:
        subprocess.CalledProcessError: uv.lock is missing or out of date with pyproject.toml.
    """
    command = [
        *uv_command(),
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-emit-project",
        "--no-annotate",
        "--no-header",
        "--directory",
        str(PROJECT_ROOT),
    ]
    for extra in extras:
        command += ["--extra", extra]
    exported = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    lines = [line.strip() for line in exported.splitlines()]
    return [line for line in lines if line and not line.startswith("#") and _name(line) not in exclude]


def _name(requirement: str) -> str:
    name = requirement.split(";")[0].split("==")[0].strip()
    return name.lower().replace("_", "-")


def install_wheels(requirements: list[str], target: Path, python_version: str, platform: str) -> None:
    """Install exactly ``requirements`` (no resolution, wheels only) into ``target``.

    ``platform`` is a uv target such as ``x86_64-manylinux_2_34``: wheels are chosen for that
    platform and ``python_version``, whatever machine runs the build.
    """
    target.mkdir(parents=True, exist_ok=True)
    requirements_file = target.parent / f"{target.name}.requirements.txt"
    requirements_file.write_text("\n".join(requirements) + "\n")
    subprocess.run(
        [
            *uv_command(),
            "pip",
            "install",
            "--quiet",
            "--no-config",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--link-mode",
            "copy",
            "--python-version",
            python_version,
            "--python-platform",
            platform,
            "--target",
            str(target),
            "-r",
            str(requirements_file),
        ],
        check=True,
    )
