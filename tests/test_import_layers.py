"""The layers of service/, enforced by import-linter (contracts in pyproject.toml): the engine and
image code never import FastAPI or Starlette, and each layer imports only the layers below it.

Also proves the contracts have teeth: the same check on a copy of service/ in which the image
preprocessing imports Starlette fails, naming the chain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .support import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_contracts_are_kept():
    done = lint_imports(PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_engine_module_importing_starlette_breaks_the_contract(tmp_path):
    skip_caches = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PROJECT_ROOT / "service", tmp_path / "service", ignore=skip_caches)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    image = tmp_path / "service" / "images" / "preprocessing" / "image.py"
    image.write_text(image.read_text() + "\nimport starlette.responses  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "never import the web framework BROKEN" in done.stdout
    assert "service.images.preprocessing.image -> starlette" in done.stdout
