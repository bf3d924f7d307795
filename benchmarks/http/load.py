"""Load test: many concurrent clients against a real uvicorn server on loopback.

    python -m benchmarks.http.load                # 32 clients, >= 60 s and >= 10,000 requests
    python -m benchmarks.http.load --clients 64 --duration 120 --json load.json
    python -m benchmarks.http.load --url http://127.0.0.1:8000 --pid 1234   # a server you started

The generator and what counts as a failure or as flat RSS: ``tests/harness/load.py`` (the CI
variant, ``tests/test_load.py``, runs it for a few seconds). Exits 1 when a request failed,
``/health`` failed or RSS was not flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import httpx

from tests.harness.load import LoadResult, generate_load
from tests.harness.paths import BUNDLED_MODELS
from tests.harness.servers import service_server


@contextlib.contextmanager
def uvicorn(model_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """Start ``uvicorn service.app:app`` (the container command) on loopback; yield (url, pid).

    Ready once ``/health`` lists a model. Output is discarded (JSON access logs are still
    formatted and written, as in production).
    """

    def serving(response: httpx.Response) -> bool:
        return bool(response.json()["models"])

    with service_server(model_dir, env=env, ready=serving, timeout=120, stop_timeout=30) as server:
        yield server.url, server.process.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--min-requests", type=int, default=10_000, help="keep going until served")
    parser.add_argument("--warmup-requests", type=int, default=1000, help="excluded from the RSS trend")
    parser.add_argument("--model-dir", type=Path, default=BUNDLED_MODELS)
    parser.add_argument("--url", help="an already running server (needs --pid for RSS)")
    parser.add_argument("--pid", type=int, help="that server's process id")
    parser.add_argument("--env", action="append", default=[], metavar="EDGE_X=V", help="server settings")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    def run(url: str, pid: int) -> LoadResult:
        return asyncio.run(
            generate_load(url, pid, args.clients, args.duration, args.warmup_requests, args.min_requests)
        )

    if args.url:
        if args.pid is None:
            parser.error("--url needs --pid")
        result = run(args.url, args.pid)
    else:
        env = dict(item.split("=", 1) for item in args.env)
        with uvicorn(args.model_dir, env) as (url, pid):
            result = run(url, pid)
    summary = {k: v for k, v in asdict(result).items() if k != "rss_samples"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    ok = result.failures == 0 and result.health_failures == 0 and result.rss_flat
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
