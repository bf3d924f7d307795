"""Pages for people: the classify page at ``GET /`` and Swagger UI at ``GET /docs``, both offline.

The page is static HTML, CSS and plain JavaScript from ``service/static/`` (no build step);
every URL in it is relative, so it works under a path prefix (an API Gateway stage or
``root_path``). ``/docs`` follows FastAPI's self-hosting recipe
(https://fastapi.tiangolo.com/how-to/custom-docs-ui-assets/#self-hosting-javascript-and-css-for-docs):
the app is built with ``docs_url=None`` and this module serves ``get_swagger_ui_html`` with the
Swagger UI JavaScript and CSS taken from the installed ``fastapi-offline`` distribution (it ships
Swagger UI 5, which renders OpenAPI 3.1; ``swagger-ui-bundle`` 1.1 ships 4.15, which cannot).
That distribution is only located on the first ``/docs`` request, never at start-up.

Which of these routes need an API key is decided in ``service.middleware.auth.OPEN_ROUTES``: none of them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.util
import re
from functools import cache
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"  # service/static
PAGE_PATH = "/"
STATIC_PATH = "/static"
DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/assets/{name}"
# The Swagger UI files /docs needs, as named in the fastapi-offline distribution.
SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def register_pages(app: FastAPI, *, docs_enabled: bool, api_key_header: str) -> None:
    """Add ``GET /``, ``/static/*`` and (when ``docs_enabled``) ``GET /docs`` + its assets.

    The app must be built with ``docs_url=None`` and ``redoc_url=None`` (their CDN versions);
    ``openapi_url`` is ``/openapi.json`` when docs are enabled, else ``None``.
    """

    @app.get(PAGE_PATH, include_in_schema=False, response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        body, csp = _page(docs_enabled, api_key_header)
        return HTMLResponse(body, headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})

    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")

    if not docs_enabled:
        return

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        # Relative URLs: from ".../docs" they resolve beside it, prefix (stage) included.
        return get_swagger_ui_html(
            openapi_url="openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="docs/assets/swagger-ui-bundle.js",
            swagger_css_url="docs/assets/swagger-ui.css",
            swagger_favicon_url="docs/assets/favicon.png",
            # null: no call to the public validator service for the schema badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(DOCS_ASSETS_PATH, include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        media_type = SWAGGER_ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, f"no docs asset named {name!r}")
        return FileResponse(
            _swagger_dir() / name,
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )


@cache
def _page(docs_enabled: bool, api_key_header: str) -> tuple[str, str]:
    """(the page's HTML, its Content-Security-Policy); read once per process."""
    text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    docs_link = '<a href="docs">API docs</a>' if docs_enabled else ""
    text = text.replace("<!--DOCS_LINK-->", docs_link)
    text = text.replace('data-key-header="X-API-Key"', f'data-key-header="{html.escape(api_key_header)}"')
    # The one inline script (the base-URL fix) is allowed by its hash; nothing else inline runs.
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode() + "'"
        for m in _INLINE_SCRIPT.finditer(text)
    )
    csp = (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    return text, csp


@cache
def _swagger_dir() -> Path:
    """Swagger UI's files inside the installed fastapi-offline (located without importing it)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("fastapi-offline is not installed: it provides Swagger UI's files for /docs")
    return Path(spec.origin).resolve().parent / "static"
