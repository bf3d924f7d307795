from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from .support import require_shared_data, uvicorn_server


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A real uvicorn server over the bundled models (models_onnx/), shared by the session."""
    with uvicorn_server() as url:
        yield url


@pytest.fixture(scope="session")
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30.0) as client:
        yield client


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``shared_data`` skip with the reason when ../shared/data is absent, so the
    pure unit tests still run anywhere; under CI=true that skip is a failure."""
    if item.get_closest_marker("shared_data") is not None:
        require_shared_data()


# The seed models (cats vs dogs, ImageNet classifiers): built once per session, on first use.
from .seed_models import seed_models  # noqa: E402, F401


@pytest.fixture
def lambda_handler():
    """``service.lambda_handler.handler``, with an event loop set on the main thread.

    Mangum calls ``asyncio.get_event_loop()``; in a fresh Lambda process that creates the loop,
    but here an earlier test's ``asyncio.run()`` may have left the main thread with none.
    """
    import asyncio

    from service.lambda_handler import handler

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield handler
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture(scope="module")
def sam() -> dict:
    """The SAM template (infra/sam/template.yaml) as written."""
    from infra import validate

    return validate.load_sam_template()


@pytest.fixture(scope="module")
def translated(sam: dict) -> dict:
    """The SAM template as packaged and translated to CloudFormation by aws-sam-translator."""
    from infra import validate

    return validate.translate_sam(validate.as_packaged(sam))


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Debian's chromium driven by Playwright (skips, or fails under CI=true, without it)."""
    from .page_support import CHROMIUM_ARGS, require_browser

    chromium = require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
