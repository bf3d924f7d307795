"""Which routes answer without an API key: every route of the app, walked, vs auth.OPEN_ROUTES.

The routes come from the app itself (``app.routes``), so a route added later by anyone is
checked too: it must either need the key or be added to ``OPEN_ROUTES`` on purpose. Requests go
through a real uvicorn server with ``EDGE_API_KEYS`` set.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from service.app import create_app
from service.config import Settings
from service.middleware.auth import OPEN_ROUTES

from .support import BUNDLED_MODELS, running_server

KEY = "door-test-key-1"
# Values for path parameters, so each route is reached with a real, answerable path.
PATH_VALUES = {"name": "mnist", "model_name": "mnist", "version": "1"}
# A file inside each mount (the page's own files).
MOUNT_FILES = {"/static": "/static/page.js"}
# Per-route path parameter values where the generic one would not name a real thing.
ROUTE_PATHS = {"/docs/assets/{name}": "/docs/assets/swagger-ui.css"}


def _settings(**overrides: object) -> Settings:
    return Settings(model_dir=BUNDLED_MODELS, api_keys=KEY, metrics_enabled=True, **overrides)


def _requests(app) -> list[tuple[str, str, str]]:
    """(route path template, method, concrete URL path) for every route of ``app``."""
    found = []
    # iter_route_contexts flattens included routers, with their prefixes (FastAPI >= 0.165).
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            found.append((route.path, "GET", MOUNT_FILES.get(route.path, route.path + "/")))
            continue
        template = route.path
        concrete = ROUTE_PATHS.get(template) or re.sub(
            r"{(\w+)(:\w+)?}", lambda m: PATH_VALUES.get(m.group(1), "x"), template
        )
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                found.append((template, method, concrete))
    return found


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    with running_server(BUNDLED_MODELS, EDGE_API_KEYS=KEY, EDGE_METRICS_ENABLED="true") as server:
        yield server.url


def test_open_routes_are_exactly_the_documented_list(keyed_server: str) -> None:
    app = create_app(_settings())
    requests = _requests(app)
    assert requests, "the app has no routes?"
    answered_without_key: set[str] = set()
    with httpx.Client(base_url=keyed_server, timeout=30) as client:
        for template, method, path in requests:
            bare = client.request(method, path)
            keyed = client.request(method, path, headers={"X-API-Key": KEY})
            assert keyed.status_code != 401, f"{method} {path} refuses a valid key: {keyed.text[:200]}"
            assert keyed.status_code < 500, f"{method} {path} -> {keyed.status_code}: {keyed.text[:200]}"
            if bare.status_code != 401:
                answered_without_key.add(template)
            else:
                assert bare.json()["detail"].startswith("missing API key"), bare.text
    assert answered_without_key == set(OPEN_ROUTES), (
        "routes open without a key differ from service.middleware.auth.OPEN_ROUTES: "
        f"open but not listed {sorted(answered_without_key - OPEN_ROUTES)}, "
        f"listed but not open or absent {sorted(OPEN_ROUTES - answered_without_key)}"
    )


def test_the_page_and_docs_load_without_a_key(keyed_server: str) -> None:
    with httpx.Client(base_url=keyed_server, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and "API key" in page.text
        assert client.get("/docs").status_code == 200
        assert client.get("/openapi.json").json()["info"]["title"] == "edge-infer"
        assert client.get("/models").status_code == 401


def test_docs_disabled_removes_docs_and_schema() -> None:
    app = create_app(_settings(docs_enabled=False))
    paths = {getattr(route, "path", None) for route in app.routes}
    assert not paths & {"/docs", "/openapi.json", "/docs/assets/{name}"}
    with (
        running_server(BUNDLED_MODELS, EDGE_API_KEYS=KEY, EDGE_DOCS_ENABLED="false") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css"):
            assert client.get(path).status_code == 404, path
        page = client.get("/")
        assert page.status_code == 200
        assert 'href="docs"' not in page.text
