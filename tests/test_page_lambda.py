"""The page, its files and the offline docs through the Lambda handler (real API Gateway events).

Text responses must come back as text (Mangum's text MIME types), and every response must fit
Lambda's 6 MB synchronous payload limit.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from tests.harness.lambda_events import LambdaContext, http_api_v2_event, rest_api_v1_event

from .support import BUNDLED_MODELS, PROJECT_ROOT

EVENTS = {"http_api_v2": http_api_v2_event, "rest_api_v1": rest_api_v1_event}
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
# path -> (content type prefix, text the body contains)
PAGES = {
    "/": ("text/html", 'data-testid="file-input"'),
    "/static/page.js": ("text/javascript", "startPage"),
    "/static/page.css": ("text/css", ".top-k"),
    "/docs": ("text/html", "docs/assets/swagger-ui-bundle.js"),
    "/docs/assets/swagger-ui-bundle.js": ("text/javascript", "SwaggerUIBundle"),
    "/docs/assets/swagger-ui.css": ("text/css", ".swagger-ui"),
    "/openapi.json": ("application/json", '"openapi"'),
}


@pytest.mark.parametrize("kind", EVENTS)
@pytest.mark.parametrize("path", PAGES)
def test_pages_through_api_gateway(lambda_handler, kind: str, path: str) -> None:
    event = EVENTS[kind](path, b"", "text/plain", method="GET")
    response = lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 200, response.get("body", "")[:300]
    content_type, needle = PAGES[path]
    headers = {k.lower(): v for k, v in response["headers"].items()}
    assert headers["content-type"].startswith(content_type)
    assert response["isBase64Encoded"] is False  # text, readable by API Gateway as is
    assert needle in response["body"]
    assert len(response["body"].encode()) < LAMBDA_RESPONSE_LIMIT


def test_favicon_is_binary_through_api_gateway(lambda_handler) -> None:
    event = http_api_v2_event("/docs/assets/favicon.png", b"", "text/plain", method="GET")
    response = lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"]).startswith(b"\x89PNG")


def test_cold_start_loads_neither_the_cli_nor_swagger_ui() -> None:
    """Building the app imports no CLI module and leaves Swagger UI's package for ``/docs``."""
    code = (
        "import sys\n"
        "from service.app import create_app\n"
        "from service.config import Settings\n"
        f"create_app(Settings(model_dir={str(BUNDLED_MODELS)!r}))\n"
        "late = ('service.cli', 'fastapi_offline', 'tqdm')\n"
        "print(sorted(m for m in sys.modules if m.startswith(late)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
