from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from .support import MNIST_NPZ, uvicorn_server


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A real uvicorn server over the bundled models (models_onnx/), shared by the session."""
    with uvicorn_server() as url:
        yield url


@pytest.fixture(scope="session")
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30.0) as client:
        yield client


def _shared_data_missing() -> str | None:
    """Why ../shared/data cannot be read (None when it can): MNIST is the proxy for the set."""
    if not MNIST_NPZ.is_file():
        return (
            f"real test data missing: {MNIST_NPZ} (../shared must sit beside the clone, "
            "or SHARED_DATA point at its data/ folder)"
        )
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``shared_data`` skip with the reason when ../shared/data is absent, so the
    pure unit tests still run anywhere; under CI=true that skip is a failure (CI always has the
    data beside the clone, so a skip there means a broken set-up)."""
    if item.get_closest_marker("shared_data") is None:
        return
    missing = _shared_data_missing()
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {missing}", pytrace=False)
    pytest.skip(missing)


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
