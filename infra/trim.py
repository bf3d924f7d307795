"""Remove from an installed package tree what serving never loads.

Every rule names what it removes and why it is safe; the fresh-interpreter test imports the
handler and serves real requests from the trimmed tree (tests/test_lambda_package.py), so a rule
that removes something the service needs fails that test. Rules are path globs relative to the
package root; ``dist-info`` metadata is kept (``importlib.metadata`` reads it at run time).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    pattern: str
    why: str


RULES: tuple[Rule, ...] = (
    Rule("**/__pycache__", "caches from the build machine; .pyc are compiled afresh for the target"),
    Rule("bin", "console scripts (uvicorn, dotenv, ...) are never run inside Lambda"),
    Rule("**/tests", "test suites shipped inside wheels (numpy, ...)"),
    Rule("**/*.pyi", "type stubs: read by type checkers, never imported"),
    Rule("**/*.pxd", "Cython declarations for building extensions"),
    Rule("numpy/_core/include", "C headers for compiling against numpy"),
    Rule("numpy/_core/lib", "static npymath library and pkg-config files, for compiling"),
    Rule("numpy/f2py", "Fortran wrapper generator; numpy imports it only on attribute access"),
    Rule("numpy/_pyinstaller", "PyInstaller hooks"),
    # numpy >= 2 loads these subpackages lazily (numpy.__getattr__) and serving never touches
    # them (checked: none is in sys.modules after digit, ImageNet, batch and V2 requests; the
    # digit normaliser uses np.partition, not np.median, which would import numpy.ma).
    Rule("numpy/random", "random generators (3.0 MB); lazily imported, never by serving"),
    Rule("numpy/polynomial", "polynomial classes; lazily imported, never by serving"),
    Rule("numpy/testing", "numpy's test helpers"),
    Rule("numpy/_core/_simd.*.so", "SIMD dispatch test module (1.5 MB), imported only by numpy's tests"),
    Rule("numpy/_core/_*_tests.*.so", "C test extensions for numpy's own test suite"),
    Rule("onnxruntime/tools", "model conversion/inspection tools; not imported by `import onnxruntime`"),
    Rule("onnxruntime/transformers", "transformer-graph optimizer, an offline tool"),
    Rule("onnxruntime/quantization", "quantization is done by convert/ at build time, not serving"),
    Rule("onnxruntime/datasets", "sample models for the ORT docs"),
    # 29 MB: the wheel also ships ORT's C API library for C/C++ callers. The Python extension
    # has the runtime linked in: it neither links this file (readelf NEEDED) nor loads it.
    Rule("onnxruntime/capi/libonnxruntime.so.*", "ORT's C API library; the Python module does not use it"),
    # PIL/_avif and pillow.libs/libavif-* stay: AVIF is an accepted upload format (service/images/heif.py).
    Rule("PIL/_imagingft.*.so", "FreeType text rendering (ImageFont), never used to classify"),
    Rule("pillow.libs/libfreetype-*", "linked only by PIL/_imagingft"),
    Rule("pillow.libs/libharfbuzz-*", "linked only by PIL/_imagingft"),
    Rule("pillow.libs/libbrotli*", "used only by FreeType for WOFF2 fonts"),
    Rule("PIL/_imagingtk.*.so", "Tkinter bridge; Lambda has no display"),
    # FastAPI imports pydantic.v1 only to reject v1 models and treats ImportError as "none"
    # (fastapi/_compat/shared.py); importing it cost ~40-60 ms of every cold start here.
    Rule("fastapi_offline/static/redoc.standalone.js", "ReDoc: only Swagger UI is served (/docs), no /redoc"),
    Rule("pydantic/v1", "pydantic 1 compatibility copy; the service uses pydantic 2 models only"),
)


def trim(root: Path, rules: tuple[Rule, ...] = RULES) -> dict[str, int]:
    """Delete every path matching a rule under ``root``.

    Returns:
        Bytes removed per rule pattern (0 when nothing matched, e.g. a library changed layout).
    """
    removed: dict[str, int] = {}
    for rule in rules:
        total = 0
        for path in sorted(root.glob(rule.pattern), key=lambda p: len(p.parts), reverse=True):
            if not path.exists() and not path.is_symlink():
                continue  # inside a directory an earlier match already removed
            total += tree_size(path)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        removed[rule.pattern] = total
    return removed


def tree_size(path: Path) -> int:
    """Bytes in a file or under a directory (symlinks not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())
