from __future__ import annotations

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


def pytest_configure(config: pytest.Config) -> None:
    if not MNIST_NPZ.exists():
        raise pytest.UsageError(f"real test data missing: {MNIST_NPZ} (../shared must sit beside the clone)")
