"""The layers of service/, enforced by import-linter (contracts in pyproject.toml): the engine and
image code never import FastAPI or Starlette, and each layer imports only the layers below it.
Also: nothing in tests/ imports benchmarks/ (what both use is in tests/harness/), and the harness
imports nothing of tests/ but itself.

Also proves the contracts have teeth: the same check on a copy of the repository's packages in
which the image preprocessing imports Starlette, or a test imports a benchmark, fails, naming the
chain.
"""

from __future__ import annotations

import ast
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


def _copy_packages(to: Path) -> None:
    skip_caches = shutil.ignore_patterns("__pycache__", "results")
    for package in ("service", "tests", "benchmarks"):
        shutil.copytree(PROJECT_ROOT / package, to / package, ignore=skip_caches)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", to / "pyproject.toml")


def test_an_engine_module_importing_starlette_breaks_the_contract(tmp_path):
    _copy_packages(tmp_path)
    image = tmp_path / "service" / "images" / "preprocessing" / "image.py"
    image.write_text(image.read_text() + "\nimport starlette.responses  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "never import the web framework BROKEN" in done.stdout
    assert "service.images.preprocessing.image -> starlette" in done.stdout


def test_a_test_importing_a_benchmark_breaks_the_contract(tmp_path):
    _copy_packages(tmp_path)
    test = tmp_path / "tests" / "test_load.py"
    test.write_text(test.read_text() + "\nimport benchmarks.http.load  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "Tests never import benchmarks (what both use is in tests.harness) BROKEN" in done.stdout
    assert "tests.test_load -> benchmarks.http.load" in done.stdout


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved against its
    package under the project root), wherever in the file the import statement is."""
    package = path.relative_to(PROJECT_ROOT).parent.parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            if not node.module:  # from . import x: x is a module of the package
                names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_no_test_imports_the_benchmarks_and_the_harness_imports_only_itself():
    """The contract's rule checked on the source, imports inside functions included, plus the
    harness's own rule, which a forbidden contract cannot express: of tests/ it imports only
    ``tests.harness`` (so a benchmark importing it never pulls in the tests' fixtures)."""
    tests = sorted((PROJECT_ROOT / "tests").rglob("*.py"))
    harness = sorted((PROJECT_ROOT / "tests" / "harness").glob("*.py"))
    assert len(tests) > 50 and len(harness) >= 8  # the scan found the files
    problems = []
    for path in tests:
        where = path.relative_to(PROJECT_ROOT)
        for name in imported_modules(path):
            if name == "benchmarks" or name.startswith("benchmarks."):
                problems.append(f"{where} imports {name}")
            if path in harness and name.split(".")[0] == "tests" and not name.startswith("tests.harness"):
                problems.append(f"{where} (harness) imports {name}")
    assert not problems, "\n".join(problems)


def test_the_import_scan_resolves_relative_and_absolute_imports():
    servers = imported_modules(PROJECT_ROOT / "tests" / "harness" / "servers.py")
    assert {"tests.harness.paths", "httpx", "subprocess"} <= servers  # from .paths import ...
    handler_test = imported_modules(PROJECT_ROOT / "tests" / "test_lambda_handler.py")
    assert "tests.harness.lambda_events" in handler_test
    # ``from . import support``
    assert "tests.support" in imported_modules(PROJECT_ROOT / "tests" / "test_metrics.py")
