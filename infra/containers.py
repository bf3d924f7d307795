"""Build and run the project's container images with podman, offline, from Debian's archive.

    python -m infra.containers base              # localhost/edge-infer-base:bookworm
    python -m infra.containers image             # localhost/edge-infer:debian (infra/Dockerfile)
    python -m infra.containers image-lambda      # localhost/edge-infer-lambda:debian (target ric)

Public image registries are out of reach here, so the base image is Debian bookworm made by
``mmdebstrap --variant=apt --include=python3,ca-certificates`` and ``podman import``ed; its
python3 is 3.11, so the package is built for 3.11 (``infra.package --python 3.11``). The rootfs
tar is cached under ``$EDGE_INFER_CACHE`` (default ``/var/cache/edge-infer``) when that
directory can be written, and rebuilt when missing. Both Dockerfiles keep their published
defaults (``python:3.12-slim``, the AWS Lambda base image) through ``BASE_IMAGE``.

podman on these machines needs ``--runtime runc`` (the default crun fails on the hybrid cgroup
layout) and, for ``run``, explicit ``--ulimit nofile/nproc``; containers use the host network
and bind 127.0.0.1 so tests reach them on loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .package import DEFAULT_OUT, build, build_dir
from .requirements import PROJECT_ROOT, install_wheels, locked_requirements

DEBIAN_SUITE = "bookworm"
DEBIAN_PYTHON = "3.11"  # bookworm's python3
BASE_IMAGE = f"localhost/edge-infer-base:{DEBIAN_SUITE}"
SERVER_IMAGE = "localhost/edge-infer:debian"
LAMBDA_IMAGE = "localhost/edge-infer-lambda:debian"
CACHE_DIR = Path(os.environ.get("EDGE_INFER_CACHE", "/var/cache/edge-infer"))
ROOTFS_TAR = f"{DEBIAN_SUITE}-python3-rootfs.tar"
# awslambdaric and its dependencies: what the AWS Lambda base image has in /var/runtime.
RUNTIME_INTERFACE_CLIENT = frozenset({"awslambdaric", "simplejson", "snapshot-restore-py"})
RUN_LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
REQUIRED_TOOLS = ("podman", "runc", "mmdebstrap")
ENABLE_HINT = (
    "apt-get update && apt-get install -y podman runc mmdebstrap (Debian; see .ci/run), then re-run the tests"
)


def missing_tools() -> list[str]:
    """The tools of ``REQUIRED_TOOLS`` not on PATH (PATH extended by /usr/sbin for runc)."""
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool, path=path) is None]


def runc_path() -> str:
    found = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not found:
        raise FileNotFoundError("runc is not installed (" + ENABLE_HINT + ")")
    return found


def podman(*args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    """``podman --runtime <runc> --cgroup-manager cgroupfs ARGS``; output captured as text.

    Raises:
        subprocess.CalledProcessError: with podman's stderr, when ``check`` and it fails.
    """
    command = ["podman", "--runtime", runc_path(), "--cgroup-manager", "cgroupfs", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, command, result.stdout, result.stderr)
    return result


def run_command(*args: str) -> list[str]:
    """The ``podman run`` command line (runtime, limits, host network) for ``args``."""
    return ["podman", "--runtime", runc_path(), "--cgroup-manager", "cgroupfs", "run", *RUN_LIMITS, *args]


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def image_size(tag: str) -> int:
    """Uncompressed size of ``tag`` in bytes (``podman image inspect`` .Size)."""
    return int(json.loads(podman("image", "inspect", tag).stdout)[0]["Size"])


def rootfs_tar(cache_dir: Path = CACHE_DIR) -> Path:
    """Debian bookworm + python3 + ca-certificates as a tar, from the cache or mmdebstrap.

    The tar is made in a temporary file and renamed, so an interrupted run leaves no bad cache.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(cache_dir, os.W_OK)
    except OSError:
        writable = False
    target_dir = cache_dir if writable else Path(tempfile.mkdtemp(prefix="edge-infer-rootfs-"))
    tar = target_dir / ROOTFS_TAR
    if tar.is_file():
        return tar
    partial = tar.with_suffix(".partial.tar")
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=apt",
            "--include=python3,ca-certificates",
            "--format=tar",
            DEBIAN_SUITE,
            str(partial),
        ],
        check=True,
        timeout=1800,
    )
    partial.rename(tar)
    return tar


def ensure_base_image(tag: str = BASE_IMAGE) -> str:
    """``tag`` imported from the Debian rootfs tar unless podman already has it."""
    if not image_exists(tag):
        podman("import", str(rootfs_tar()), tag, timeout=1800)
    return tag


def debian_package(out: Path = DEFAULT_OUT, model_dirs: list[Path] | None = None) -> Path:
    """The x86_64 package for bookworm's Python 3.11 + uvicorn (``server/``), built unless present.

    Args:
        model_dirs: models to include (default: every model under models_onnx/).
    """
    base = build_dir(out, "x86_64", DEBIAN_PYTHON)
    if not (base / "package").is_dir() or not (base / "server").is_dir():
        build(out, "x86_64", model_dirs, python_version=DEBIAN_PYTHON, server=True)
    return base


def add_runtime_interface_client(context: Path, python_version: str, platform: str) -> Path:
    """awslambdaric (locked release, manylinux wheels) into ``context/runtime/``."""
    target = context / "runtime"
    if not (target / "awslambdaric").is_dir():
        pinned = [
            r
            for r in locked_requirements(("dev",), exclude=frozenset())
            if r.split("==")[0].strip() in RUNTIME_INTERFACE_CLIENT
        ]
        install_wheels(pinned, target, python_version, platform)
    return target


def build_image(dockerfile: Path, context: Path, tag: str, *, target: str | None = None) -> str:
    """``podman build`` with BASE_IMAGE = the Debian base, no network, docker format (keeps
    HEALTHCHECK, which the OCI format drops)."""
    args = ["build", "--network", "none", "--format", "docker", "--pull=never"]
    args += ["--build-arg", f"BASE_IMAGE={ensure_base_image()}", "-f", str(dockerfile), "-t", tag]
    if target:
        args += ["--target", target]
    podman(*args, str(context), timeout=1800)
    return tag


def server_image(context: Path | None = None, tag: str = SERVER_IMAGE) -> str:
    """infra/Dockerfile on the Debian base, from a Python 3.11 package build (``debian_package``)."""
    return build_image(PROJECT_ROOT / "infra" / "Dockerfile", context or debian_package(), tag)


def lambda_image(context: Path | None = None, tag: str = LAMBDA_IMAGE) -> str:
    """infra/Dockerfile.lambda, target ``ric`` (awslambdaric added), on the Debian base."""
    context = context or debian_package()
    add_runtime_interface_client(context, DEBIAN_PYTHON, "x86_64-manylinux_2_34")
    return build_image(PROJECT_ROOT / "infra" / "Dockerfile.lambda", context, tag, target="ric")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.containers", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["base", "image", "image-lambda"])
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"missing: {', '.join(missing)}; {ENABLE_HINT}", file=sys.stderr)
        return 1
    tag = {"base": ensure_base_image, "image": server_image, "image-lambda": lambda_image}[args.what]()
    print(f"{tag}: {image_size(tag) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
