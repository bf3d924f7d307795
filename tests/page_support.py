"""Browser-test support: finding Chromium, and the service behind an API Gateway-like stage prefix.

``app`` (for ``uvicorn tests.page_support:app``) is the real service behind a path prefix that is
stripped before the app sees the request, with no ``root_path`` set: what an API Gateway REST
API stage does in front of Mangum. The browser sees ``/dev/...``; the app sees ``/...``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.servers import free_port, serve, uvicorn_command

STAGE_PREFIX = os.environ.get("EDGE_TEST_STAGE_PREFIX", "/dev")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW_TO_ENABLE = (
    "browser tests need Chromium and Playwright: `apt-get install chromium` (Debian/Ubuntu; or set "
    "EDGE_CHROMIUM=/path/to/chromium) and `uv sync --all-extras` (installs playwright). "
    "Playwright's own browser download is not needed."
)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("EDGE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_browser() -> str:
    """Chromium's path; skips the test when it or Playwright is missing, FAILS in CI (CI=true)."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed"
    path = chromium_path()
    if path is None:
        problem = problem or "no chromium executable found"
    if problem is None:
        return path  # type: ignore[return-value]
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser tests, but {problem}: {HOW_TO_ENABLE}")
    pytest.skip(f"{problem}; {HOW_TO_ENABLE}")


class _StripStage:
    """ASGI: serve ``inner`` under ``prefix``, stripping it from the path (no root_path)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._inner = None

    async def __call__(self, scope, receive, send) -> None:
        if self._inner is None:
            from service.app import app as inner

            self._inner = inner
        if scope["type"] == "http":
            path = scope["path"]
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                await send({"type": "http.response.start", "status": 403, "headers": []})
                await send({"type": "http.response.body", "body": b'{"message":"Forbidden"}'})
                return
            stripped = path[len(self.prefix) :] or "/"
            scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        await self._inner(scope, receive, send)


app = _StripStage(STAGE_PREFIX)


@contextlib.contextmanager
def stage_server(model_dir: Path, **env: str) -> Iterator[str]:
    """uvicorn serving ``app`` on a free loopback port; yields the stage URL (``.../dev``)."""
    port = free_port()
    child_env = {
        **os.environ,
        "EDGE_MODEL_DIR": str(model_dir),
        "EDGE_TEST_STAGE_PREFIX": STAGE_PREFIX,
        **env,
    }
    with (
        tempfile.TemporaryDirectory(prefix="uvicorn-stage-") as tmp,
        serve(
            uvicorn_command(port, app="tests.page_support:app"),
            port=port,
            env=child_env,
            log_path=Path(tmp) / "server.log",
            ready_path=STAGE_PREFIX + "/health",
        ) as server,
    ):
        yield server.url + STAGE_PREFIX
