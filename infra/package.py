"""Build the AWS Lambda deployment package, reproducibly and without Docker.

    python -m infra.package [--arch x86_64|arm64] [--python 3.12|3.13|3.11] [--model DIR ...]
                            [--out build/lambda] [--server]

Steps: the runtime's locked wheels for the Lambda Python runtime and platform
(``infra.requirements``), trimmed (``infra.trim``); ``service/`` and the selected models (each a
directory with ``manifest.json`` and the ``.onnx`` it names) at the root, as Lambda's
``/var/task`` expects, with ONNX Runtime's graph optimizations pre-applied (``infra.optimize``);
everything compiled to ``.pyc`` by an interpreter of the target version
(``/var/task`` is read-only, so without them every cold start compiles from source); then a zip
with sorted entries and fixed timestamps, so the same inputs give the same bytes.

Outputs under ``<out>/<arch>/`` (``<out>/<arch>-py<version>/`` for a Python other than 3.12:
3.13 is Lambda's newer runtime, 3.11 is Debian bookworm's, the base of the locally built
images): ``package/`` (the unzipped tree; also what the container images
copy), ``server/`` (uvicorn for the CPU container, with ``--server``), ``edge-infer-<arch>.zip``
and ``size-report.json``. Exits 1 when the unzipped size exceeds Lambda's limit.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from service.manifest import MANIFEST_FILENAME, Manifest

from .optimize import can_optimize_for, optimize_model_dir
from .requirements import PROJECT_ROOT, install_wheels, locked_requirements
from .trim import RULES, tree_size, trim

# "Deployment package size quotas: 250 MB (unzipped)", enforced as 262,144,000 bytes:
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
LAMBDA_UNZIPPED_LIMIT = 262_144_000
# The project's own budget: every int8 model included (issue 4).
TARGET_UNZIPPED_BYTES = 150 * 1_000_000
# The python3.12 Lambda runtime runs on Amazon Linux 2023, glibc 2.34:
# https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
PLATFORMS = {"x86_64": "x86_64-manylinux_2_34", "arm64": "aarch64-manylinux_2_34"}
DEFAULT_PYTHON_VERSION = "3.12"
# Pythons the package can target: Lambda's python3.12 / python3.13 runtimes; 3.11 for a
# container on Debian bookworm's python3 (the images built here from Debian's archive).
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
DEFAULT_OUT = PROJECT_ROOT / "build" / "lambda"
DEFAULT_MODELS_ROOT = PROJECT_ROOT / "models_onnx"
# Fixed zip timestamp (the earliest a zip can store) so rebuilds are byte-identical.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass
class BuildResult:
    package_dir: Path
    zip_path: Path
    report: dict = field(default_factory=dict)

    @property
    def within_limit(self) -> bool:
        return self.report["unzipped_bytes"] <= self.report["limit_bytes"]


def build_dir(out: Path, arch: str, python_version: str = DEFAULT_PYTHON_VERSION) -> Path:
    """``<out>/<arch>`` for the default Python, ``<out>/<arch>-py<version>`` otherwise."""
    suffix = "" if python_version == DEFAULT_PYTHON_VERSION else f"-py{python_version}"
    return out / f"{arch}{suffix}"


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` (e.g. "3.12") to compile .pyc with, or None.

    Looks at ``$LAMBDA_PYTHON``, the running interpreter, ``pythonX.Y`` on PATH, then pyenv.
    """
    candidates = [os.environ.get("LAMBDA_PYTHON"), sys.executable, shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        try:
            found = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if found == version:
            return candidate
    return None


def default_model_dirs(root: Path = DEFAULT_MODELS_ROOT) -> list[Path]:
    """Every ``root/*/`` holding a manifest (the models the service would serve from ``root``)."""
    return sorted(p.parent for p in root.glob(f"*/{MANIFEST_FILENAME}")) if root.is_dir() else []


def copy_models(model_dirs: list[Path], target: Path) -> dict[str, int]:
    """Copy each model's manifest and the ``.onnx`` it names into ``target/<dir name>/``.

    Raises:
        ValueError: a manifest is invalid or its model file is missing.
    """
    sizes = {}
    for model_dir in model_dirs:
        manifest = Manifest.model_validate_json((model_dir / MANIFEST_FILENAME).read_bytes())
        source = model_dir / manifest.file
        if not source.is_file():
            raise ValueError(f"{model_dir}: model file {manifest.file} is missing")
        destination = target / model_dir.name
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_dir / MANIFEST_FILENAME, destination / MANIFEST_FILENAME)
        shutil.copyfile(source, destination / manifest.file)
        sizes[manifest.name] = tree_size(destination)
    return sizes


def copy_service(target: Path) -> None:
    """The ``service`` package's Python sources and the page's files in ``service/static/``
    (nothing else: no caches, no tests)."""
    source = PROJECT_ROOT / "service"
    page_files = [p for p in (source / "static").rglob("*") if p.is_file()]
    for path in sorted([*source.rglob("*.py"), *page_files]):
        if "__pycache__" in path.parts:
            continue
        destination = target / "service" / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)


def compile_pyc(python: str, root: Path) -> None:
    """Byte-compile every module under ``root`` with ``python`` (the target version).

    ``unchecked-hash`` pycs are used without comparing source timestamps (which unzipping
    changes) or hashing sources at import (PEP 552); paths are stored relative to ``root``.
    """
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(root),
            str(root),
        ],
        check=True,
    )


def write_zip(root: Path, zip_path: Path) -> None:
    """Zip ``root``'s contents with sorted names, a fixed timestamp and normalised modes."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_EPOCH)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=6)


def size_report(
    root: Path, zip_path: Path, models: dict[str, int], removed: dict[str, int], meta: dict
) -> dict:
    """Sizes in bytes: total unzipped and zipped, per top-level entry, per model, trimmed."""
    by_entry = {p.name: tree_size(p) for p in root.iterdir()}
    unzipped = sum(by_entry.values())
    return {
        **meta,
        "zip": zip_path.name,
        "zip_sha256": hashlib.sha256(zip_path.read_bytes()).hexdigest(),
        "zipped_bytes": zip_path.stat().st_size,
        "unzipped_bytes": unzipped,
        "limit_bytes": LAMBDA_UNZIPPED_LIMIT,
        "target_bytes": TARGET_UNZIPPED_BYTES,
        "files": sum(1 for p in root.rglob("*") if p.is_file()),
        "models": models,
        "largest_entries": dict(sorted(by_entry.items(), key=lambda kv: -kv[1])[:12]),
        "trimmed_bytes": removed,
    }


def build(
    out: Path = DEFAULT_OUT,
    arch: str = "x86_64",
    model_dirs: list[Path] | None = None,
    python_version: str = DEFAULT_PYTHON_VERSION,
    python: str | None = None,
    server: bool = False,
    optimize: bool = True,
) -> BuildResult:
    """Build the package tree, zip and size report for ``arch``; see the module docstring.

    Args:
        python: interpreter used to compile .pyc; found by ``find_python`` when None. Without
            one of ``python_version`` (a cross-version build) the package ships without .pyc.
        optimize: save the models with ONNX Runtime's extended optimizations applied, when the
            build machine can (``infra.optimize.can_optimize_for``).

    Raises:
        subprocess.CalledProcessError: uv could not export the lock or install a wheel (e.g.
            no wheel of a pinned version for that platform and Python).
    """
    if python_version not in PYTHON_VERSIONS:
        raise ValueError(f"python_version {python_version!r} is not one of {PYTHON_VERSIONS}")
    platform = PLATFORMS[arch]
    base = build_dir(out, arch, python_version)
    package_dir = base / "package"
    for stale in (package_dir, base / "server"):
        if stale.exists():
            shutil.rmtree(stale)
    requirements = locked_requirements()
    install_wheels(requirements, package_dir, python_version, platform)
    removed = trim(package_dir, RULES)
    copy_service(package_dir)
    models_root = package_dir / "models_onnx"
    copy_models(default_model_dirs() if model_dirs is None else model_dirs, models_root)
    pinned_ort = next(
        r.split("==")[1].split(";")[0].strip() for r in requirements if r.startswith("onnxruntime==")
    )
    why_not = "disabled (--no-optimize)" if not optimize else can_optimize_for(arch, pinned_ort)
    optimization = {
        d.name: optimize_model_dir(d) if why_not is None else {"optimized": False, "reason": why_not}
        for d in sorted(p.parent for p in models_root.glob(f"*/{MANIFEST_FILENAME}"))
    }
    models = {name: tree_size(models_root / name) for name in optimization}
    if server:
        runtime = set(locked_requirements())
        extra = [r for r in locked_requirements(("server",)) if r not in runtime]
        install_wheels(extra, base / "server", python_version, platform)
        trim(base / "server", RULES)
    python = python or find_python(python_version)
    if python:
        compile_pyc(python, package_dir)
        if server:
            compile_pyc(python, base / "server")
    else:
        print(f"warning: no Python {python_version} found; package ships without .pyc", file=sys.stderr)
    zip_path = base / f"edge-infer-{arch}.zip"
    write_zip(package_dir, zip_path)
    meta = {
        "arch": arch,
        "platform": platform,
        "python_version": python_version,
        "pyc_compiled_with": python,
        "model_optimization": optimization,
    }
    report = size_report(package_dir, zip_path, models, removed, meta)
    (base / "size-report.json").write_text(json.dumps(report, indent=2) + "\n")
    # The directory is the images' build context (infra/Dockerfile*): only the trees go in.
    (base / ".dockerignore").write_text("*\n!package/\n!server/\n!runtime/\n")
    return BuildResult(package_dir=package_dir, zip_path=zip_path, report=report)


def format_report(report: dict) -> str:
    mb = 1_000_000
    lines = [
        f"{report['zip']}: {report['zipped_bytes'] / mb:.1f} MB zipped, "
        f"{report['unzipped_bytes'] / mb:.1f} MB unzipped, {report['files']} files "
        f"({report['arch']}, Python {report['python_version']}, sha256 {report['zip_sha256'][:12]})",
        f"  Lambda limit {report['limit_bytes'] / mb:.1f} MB unzipped; project target "
        f"{report['target_bytes'] / mb:.0f} MB: "
        + ("within" if report["unzipped_bytes"] <= report["target_bytes"] else "OVER"),
        "  models: " + (", ".join(f"{k} {v / mb:.2f} MB" for k, v in report["models"].items()) or "none"),
        "  largest: "
        + ", ".join(f"{k} {v / mb:.1f} MB" for k, v in list(report["largest_entries"].items())[:6]),
        f"  trimmed: {sum(report['trimmed_bytes'].values()) / mb:.1f} MB",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.package",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--arch",
        choices=sorted(PLATFORMS),
        action="append",
        help="target architecture; repeat for several (default: x86_64)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        dest="models",
        metavar="DIR",
        help="model directory (manifest.json + .onnx) to include; repeatable "
        f"(default: every model under {DEFAULT_MODELS_ROOT.relative_to(PROJECT_ROOT)}/)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--python",
        "--python-version",
        dest="python_version",
        choices=PYTHON_VERSIONS,
        default=DEFAULT_PYTHON_VERSION,
        help="target Python: 3.12 (Lambda python3.12, default), 3.13 (python3.13), "
        "3.11 (Debian bookworm's python3, for the locally built images)",
    )
    parser.add_argument("--python-exe", help="interpreter of that version used to compile .pyc")
    parser.add_argument(
        "--server", action="store_true", help="also install uvicorn into <out>/<arch>/server/"
    )
    parser.add_argument(
        "--no-optimize",
        action="store_true",
        help="ship the model files as they are (no ONNX Runtime offline optimization)",
    )
    args = parser.parse_args(argv)
    status = 0
    for arch in args.arch or ["x86_64"]:
        result = build(
            args.out,
            arch,
            args.models,
            args.python_version,
            args.python_exe,
            args.server,
            optimize=not args.no_optimize,
        )
        print(format_report(result.report))
        if not result.within_limit:
            print(f"error: {result.zip_path.name} is over Lambda's unzipped limit", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
