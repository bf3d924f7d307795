"""Short CI run of the load generator (``tests/harness/load.py``; ``python -m benchmarks.http.load``
runs it at length): 32 concurrent clients for a few seconds against a real uvicorn server.
Asserts correctness under concurrency, not speed (speed and the >= 60 s, >= 10,000-request RSS
run belong to the benchmark): every request answered 200 with the same top-k as when sent
alone, and /health answering throughout.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.harness.load import generate_load

from .support import running_server

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data


def test_concurrent_clients_all_get_correct_answers_and_health_keeps_answering() -> None:
    with running_server() as server:
        result = asyncio.run(
            generate_load(server.url, server.process.pid, clients=32, duration=8.0, warmup_requests=100)
        )
        assert server.process.poll() is None
    assert result.failures == 0, result.failure_examples
    assert result.requests >= 32
    assert result.health_probes >= 5 and result.health_failures == 0
