"""Run the arm64 (Graviton) package on an x86-64 machine: Debian's aarch64 CPython under QEMU.

- QEMU user mode from Debian bookworm-backports (QEMU 10): bookworm's own 7.2 crashes on
  ``import onnxruntime`` (>= 1.28), a crash worth watching for on real Graviton too.
- An aarch64 CPython 3.13 (Lambda's ``python3.13`` runtime version) and the libraries the
  wheels link against, taken from Debian trixie with ``mmdebstrap --variant=extract``; the
  ``lib -> usr/lib`` link (the dynamic loader's path) is added, which that variant leaves out.
- ``QEMU_CPU=neoverse-n1``: Graviton2's core, so ONNX Runtime picks the kernels it would there.

The tree is cached under ``$EDGE_INFER_CACHE`` (default ``/var/cache/edge-infer``) when that
can be written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .containers import CACHE_DIR

PYTHON_VERSION = "3.13"
DEBIAN_SUITE = "trixie"
QEMU = "qemu-aarch64-static"
CPU = "neoverse-n1"
PACKAGES = (
    f"python{PYTHON_VERSION}",
    f"libpython{PYTHON_VERSION}-stdlib",
    "libc6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3t64",
    "libstdc++6",
    "libgcc-s1",
    "libgomp1",
)
ENABLE_HINT = (
    "add bookworm-backports to apt's sources, then apt-get install -t bookworm-backports "
    "qemu-user-static, and apt-get install mmdebstrap (see .ci/run)"
)


def qemu_version() -> tuple[int, ...] | None:
    """QEMU user mode's version, or None when it is not installed."""
    if shutil.which(QEMU) is None:
        return None
    first = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(x) for x in first.split("version ")[1].split()[0].split(".")[:2])


def missing_tools() -> list[str]:
    """What is missing to run the arm64 package here (QEMU >= 8 and mmdebstrap)."""
    missing = []
    version = qemu_version()
    if version is None or version < (8, 0):
        missing.append(f"{QEMU} >= 8 (found {version})")
    if shutil.which("mmdebstrap") is None:
        missing.append("mmdebstrap")
    return missing


def aarch64_root(cache_dir: Path = CACHE_DIR) -> Path:
    """Debian trixie's aarch64 python3.13 and libraries, extracted (cached when possible)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        parent = cache_dir if os.access(cache_dir, os.W_OK) else None
    except OSError:
        parent = None
    parent = parent or Path(tempfile.mkdtemp(prefix="edge-infer-arm64-"))
    root = parent / f"{DEBIAN_SUITE}-arm64-python{PYTHON_VERSION}"
    if (root / "usr" / "bin" / f"python{PYTHON_VERSION}").is_file():
        return root
    partial = parent / f"{root.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=extract",
            "--architectures=arm64",
            "--include=" + ",".join(PACKAGES),
            DEBIAN_SUITE,
            str(partial),
        ],
        check=True,
        timeout=1800,
    )
    (partial / "lib").unlink(missing_ok=True)
    (partial / "lib").symlink_to("usr/lib")
    partial.rename(root)
    return root


def python_command(root: Path) -> tuple[list[str], dict[str, str]]:
    """(argv prefix, extra environment) running ``root``'s aarch64 python under QEMU."""
    return (
        [QEMU, "-L", str(root), str(root / "usr" / "bin" / f"python{PYTHON_VERSION}")],
        {"QEMU_CPU": CPU},
    )
