"""Build the Lambda package once per test session and run code in a fresh interpreter over it.

The interpreter is the Lambda runtime's version (Python 3.12) when one is installed, else the
running one; the package is built for whichever is used, so its compiled wheels import.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.package import BuildResult, build, find_python
from infra.requirements import install_wheels, locked_requirements

from .support import BUNDLED_MODELS

LAMBDA_PYTHON_VERSION = "3.12"
# awslambdaric and its dependencies: what the AWS Lambda base image has in /var/runtime.
RUNTIME_INTERFACE_CLIENT = frozenset({"awslambdaric", "simplejson", "snapshot-restore-py"})


@dataclass(frozen=True)
class Interpreter:
    executable: str
    version: str  # "3.12"


@functools.cache
def target_interpreter() -> Interpreter:
    found = find_python(LAMBDA_PYTHON_VERSION)
    if found:
        return Interpreter(found, LAMBDA_PYTHON_VERSION)
    return Interpreter(sys.executable, f"{sys.version_info[0]}.{sys.version_info[1]}")


@dataclass(frozen=True)
class UnpackedPackage:
    build: BuildResult
    task_root: Path  # the zip extracted, as Lambda extracts it into /var/task
    python: Interpreter


_cache: dict[Path, UnpackedPackage] = {}


def unpacked_package(workdir: Path) -> UnpackedPackage:
    """Build the zip (bundled digit model only) under ``workdir`` and extract it; cached."""
    if workdir not in _cache:
        python = target_interpreter()
        result = build(
            out=workdir / "build",
            model_dirs=[BUNDLED_MODELS / "mnist"],
            python_version=python.version,
            python=python.executable,
        )
        task_root = workdir / "task"
        with zipfile.ZipFile(result.zip_path) as archive:
            for info in archive.infolist():
                archive.extract(info, task_root)
                # zipfile drops permission bits; Lambda keeps them (shared libraries need r).
                (task_root / info.filename).chmod((info.external_attr >> 16) & 0o777)
        _cache[workdir] = UnpackedPackage(result, task_root, python)
    return _cache[workdir]


def install_runtime_interface_client(target: Path, python: Interpreter) -> Path:
    """awslambdaric (locked version, manylinux wheel for ``python``) in ``target``."""
    if not target.exists():
        pinned = [
            r
            for r in locked_requirements(("dev",), exclude=frozenset())
            if r.split("==")[0].strip() in RUNTIME_INTERFACE_CLIENT
        ]
        install_wheels(pinned, target, python.version, "x86_64-manylinux_2_34")
    return target


def run_isolated(
    python: Interpreter, script: str, *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run ``script`` with ``-I -S``: no site-packages, no user site, no PYTHON* variables."""
    return subprocess.run(
        [python.executable, "-I", "-S", "-c", script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def require_tools(missing: list[str], hint: str, what: str) -> None:
    """Skip (or, under CI=true, fail) when tools ``what`` needs are missing.

    CI must run these tests: .ci/run installs the tools, so a skip there means a broken set-up.
    """
    if not missing:
        return
    message = f"{what} needs {', '.join(missing)}: {hint}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)
