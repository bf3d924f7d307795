"""Without ../shared/data the suite still runs what needs no data, and says why it skipped the
rest; under CI=true (where the data always sits beside the clone) that skip is a failure.

Runs pytest itself on a few modules, with SHARED_DATA pointing at an empty folder: one that loads
MNIST at import (the whole module skips), one marked ``shared_data`` (each test skips), one
that needs no data (it passes).
"""

from __future__ import annotations

import os
import subprocess
import sys

from .support import PROJECT_ROOT

MODULES = ["tests/test_batch.py", "tests/test_decode_draft.py", "tests/test_allocator.py"]


def run_pytest(tmp_path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SHARED_DATA"] = str(tmp_path)  # an empty folder: no MNIST, no photos
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *MODULES],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_missing_data_skips_with_the_reason_and_the_rest_passes(tmp_path):
    done = run_pytest(tmp_path, ci=False)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "real test data missing" in done.stdout
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" in summary and "failed" not in summary


def test_missing_data_fails_under_ci(tmp_path):
    done = run_pytest(tmp_path, ci=True)
    assert done.returncode != 0
    assert "CI=true but real test data missing" in done.stdout
