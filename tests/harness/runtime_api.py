"""A Lambda Runtime API on loopback, for driving awslambdaric outside AWS.

The invocation endpoints of https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
(``GET /invocation/next``, ``POST /invocation/{id}/response|error``, ``POST /init/error``),
backed by queues. Used by tests/test_runtime_api.py, the container tests
and ``benchmarks.startup.container_start``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:edge-infer"


@dataclass
class RuntimeAPI:
    """The Lambda Runtime API's invocation endpoints, backed by queues.

    ``GET /invocation/next`` blocks until an event is queued, like the real service does
    between invocations; results and errors are recorded per request id.
    """

    pending: queue.Queue = field(default_factory=queue.Queue)
    results: dict[str, queue.Queue] = field(default_factory=dict)
    init_errors: list[dict] = field(default_factory=list)

    def invoke(self, event: dict, timeout: float = 60.0) -> tuple[str, dict]:
        """Queue one event; wait for ("response" | "error", payload)."""
        request_id = str(uuid.uuid4())
        self.results[request_id] = queue.Queue()
        self.pending.put((request_id, json.dumps(event).encode()))
        return self.results[request_id].get(timeout=timeout)

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the client keeps one connection alive

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path != f"{API_PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorMessage": "unknown path"}')
                request_id, body = api.pending.get()
                deadline_ms = int((time.time() + 30) * 1000)
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                parts = self.path.removeprefix(API_PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append(payload)
                elif len(parts) == 3 and parts[0] == "invocation" and parts[1] in api.results:
                    api.results[parts[1]].put((parts[2], payload))
                else:
                    return self._reply(404, b'{"errorMessage": "unknown path"}')
                self._reply(202, b'{"status": "OK"}')

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@contextmanager
def serve_runtime_api() -> Iterator[tuple[RuntimeAPI, str]]:
    """(api, "127.0.0.1:port"): a Runtime API on a free loopback port, stopped on exit."""
    api = RuntimeAPI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler_class())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        yield api, f"{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
