"""Throughput under concurrent load: the server beside the no-HTTP limit, interleaved in one run.

    python -m benchmarks.http.throughput --model-dir /path/to/models --model cats_vs_dogs
    python -m benchmarks.http.throughput --model-dir ... --route batch --batch-files 8
    python -m benchmarks.http.throughput --model-dir ... --env EDGE_DYNAMIC_BATCHING=false  # old plan
    python -m benchmarks.http.throughput --model-dir ... --json benchmarks/results/throughput.json

**Limit** (no HTTP): what this machine's CPUs can do with the same model file and the same
photo: one process per CPU of the budget, each with a 1-intra-op-thread ONNX Runtime session,
running the service's own ``prepare`` (JPEG draft decode + resize) and ``inference.run`` back
to back; images/s summed over the processes. **Single**: one image at a time in this process
with the service's session options and thread plan (``intra_op_threads`` = the budget): the
lowest latency one request can get, p50 ms.

**Server**: ``uvicorn service.app:app`` as the container starts it (shipped defaults unless
``--env``), loaded by ``hey`` (https://github.com/rakyll/hey, Debian package ``hey``) -- a
separate process, so the load generator is not the server's interpreter -- with 1/4/8/16
connections for ``--seconds`` each. ``hey -o csv`` gives every request's latency and status, so
p50/p99 and the error count are exact. The photo is a real cats-vs-dogs JPEG (the 500x375 copy of
``http_sizes.same_photo_sizes``), sent as a multipart upload as ``curl -F`` sends it.

Each client count gets ``--rounds`` server runs, each between two limit runs of the same length;
a row's ratio is its images/s over the mean of the limit runs around its server runs. The load
generator and the server share the machine's CPUs (the limit has them to itself), so the ratio
is a lower bound of the server's efficiency -- on a machine with no other load. Under other load
the kernel shares CPUs per runnable thread, and the server (decode threads, ONNX Runtime threads,
the event loop) may get a larger share than the limit's one thread per CPU, so the ratio can
exceed 1. The CPU ms per image of the server, of ``hey`` and of the limit (from
``/proc``/``getrusage``) do not depend on that share: their quotient is the server's work per
image over the limit's.
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from benchmarks.output import emit
from convert.cpu import cpu_info
from tests.harness.servers import Server, service_server
from tests.harness.stats import percentile

CLIENTS = (1, 4, 8, 16)
BOUNDARY = "edgeinferthroughputboundary"


@dataclass
class Row:
    """One server run beside the limit: images/s, latency percentiles and errors."""

    clients: int
    requests: int
    errors: int
    images_per_s: float
    p50_ms: float
    p99_ms: float
    limit_images_per_s: float
    ratio: float
    statuses: dict[str, int]
    server_cpu_ms_per_image: float
    hey_cpu_ms_per_image: float
    limit_cpu_ms_per_image: float


def multipart(parts: Sequence[tuple[str, str, bytes]]) -> bytes:
    """A multipart/form-data body of (field, filename, JPEG bytes) parts, boundary ``BOUNDARY``."""
    out = io.BytesIO()
    for field, filename, data in parts:
        out.write(f"--{BOUNDARY}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode())
        out.write(b"Content-Type: image/jpeg\r\n\r\n")
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


# --- the limit: no HTTP, one 1-thread session per CPU ----------------------------------------

_worker_state: dict = {}


def _limit_init(model_path: str, jpeg: bytes) -> None:
    from service.engine.registry import load_model

    model = load_model(Path(model_path), intra_op_threads=1)
    _worker_state.update(model=model, jpeg=jpeg)
    _limit_work(time.monotonic() + 0.5)  # warm: first runs allocate and prepack


def _limit_work(deadline: float) -> tuple[int, float]:
    """(images prepared and run, CPU seconds used) until ``deadline`` (``time.monotonic``,
    shared by all processes)."""
    from service.engine.inference import run
    from service.engine.pipeline import prepare

    model, jpeg = _worker_state["model"], _worker_state["jpeg"]
    count = 0
    cpu = time.process_time()
    while time.monotonic() < deadline:
        run(model, prepare(model, jpeg, 40_000_000))
        count += 1
    return count, time.process_time() - cpu


class Limit:
    """A pool of ``processes`` workers measuring the no-HTTP limit on demand."""

    def __init__(self, manifest: Path, jpeg: bytes, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.processes = processes
        self.images = 0
        self.cpu_seconds = 0.0
        self.pool = context.Pool(processes, initializer=_limit_init, initargs=(str(manifest), jpeg))

    def images_per_s(self, seconds: float) -> float:
        start = time.monotonic() + 0.2
        deadline = start + seconds
        results = self.pool.map(_limit_work, [deadline] * self.processes, chunksize=1)
        self.images += sum(n for n, _ in results)
        self.cpu_seconds += sum(c for _, c in results)
        return sum(n for n, _ in results) / (time.monotonic() - start)

    def cpu_ms_per_image(self) -> float:
        """CPU ms per image over every run so far (independent of the share of the CPUs got)."""
        return 1000 * self.cpu_seconds / max(self.images, 1)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


class Single:
    """One image at a time in this process with the service's thread plan (no HTTP)."""

    def __init__(self, manifest: Path, jpeg: bytes) -> None:
        from service.config import Settings
        from service.engine.registry import load_model

        self.model = load_model(manifest, Settings().thread_plan().intra_op_threads)
        self.jpeg = jpeg
        self.p50_ms(10)

    def p50_ms(self, runs: int = 100) -> float:
        """p50 ms of ``prepare`` + ``run`` of the photo over ``runs`` images."""
        from service.engine.inference import run
        from service.engine.pipeline import prepare

        times = []
        for _ in range(runs):
            start = time.perf_counter()
            run(self.model, prepare(self.model, self.jpeg, 40_000_000))
            times.append(time.perf_counter() - start)
        return percentile(times, 50) * 1000


# --- the server, loaded by hey ------------------------------------------------------------------


def hey(
    url: str, body: Path, content_type: str, clients: int, seconds: float
) -> tuple[list[float], list[str]]:
    """(latencies in s of the answered requests, status of every request) of one ``hey`` run."""
    command = [
        "hey", "-z", f"{seconds}s", "-c", str(clients), "-m", "POST",
        "-T", content_type, "-D", str(body), "-o", "csv", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60)
    latencies, statuses = [], []
    for row in csv.DictReader(io.StringIO(done.stdout)):
        status = row.get("status-code", "")
        statuses.append(status)
        if status == "200":
            latencies.append(float(row["response-time"]))
    return latencies, statuses


def measure(
    server: Server,
    path: str,
    body: bytes,
    content_type: str,
    images_per_request: int,
    limit: Limit,
    clients: Sequence[int],
    seconds: float,
    rounds: int,
    single: Single,
) -> tuple[list[Row], list[float]]:
    """One row per client count: ``rounds`` server runs of ``seconds``, each between two limit
    runs of the same length (the machine's other load changes by the second; interleaving
    short runs keeps the limit and the server under the same share of it). Also the single-image
    p50 ms, measured before and after the 1-client runs (or at the start without them)."""
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        body_path = Path(tmp) / "body"
        body_path.write_bytes(body)
        url = f"{server.url}{path}"
        hey(url, body_path, content_type, max(clients), 2.0)  # warm-up: sessions, allocator, pools
        rows = []
        singles = [single.p50_ms()]
        for count in clients:
            limits = [limit.images_per_s(seconds)]
            latencies: list[float] = []
            statuses: list[str] = []
            server_cpu = hey_cpu = 0.0
            limit.images, limit.cpu_seconds = 0, 0.0
            for _ in range(rounds):
                server_before, hey_before = _cpu_seconds(server.process.pid), _children_cpu_seconds()
                answered, sent = hey(url, body_path, content_type, count, seconds)
                server_cpu += _cpu_seconds(server.process.pid) - server_before
                hey_cpu += _children_cpu_seconds() - hey_before
                latencies += answered
                statuses += sent
                limits.append(limit.images_per_s(seconds))
            if count == 1:
                singles.append(single.p50_ms())
            # Each server run sits between two limit runs: weight the outer ones by half.
            reference = (sum(limits) - (limits[0] + limits[-1]) / 2) / rounds
            done = len(latencies) * images_per_request
            images = done / (seconds * rounds)
            tally: dict[str, int] = {}
            for status in statuses:
                tally[status] = tally.get(status, 0) + 1
            rows.append(
                Row(
                    clients=count,
                    requests=len(statuses),
                    errors=len(statuses) - len(latencies),
                    images_per_s=round(images, 1),
                    p50_ms=round(percentile(latencies, 50) * 1000, 2),
                    p99_ms=round(percentile(latencies, 99) * 1000, 2),
                    limit_images_per_s=round(reference, 1),
                    ratio=round(images / reference, 3),
                    statuses=tally,
                    server_cpu_ms_per_image=round(1000 * server_cpu / max(done, 1), 2),
                    hey_cpu_ms_per_image=round(1000 * hey_cpu / max(done, 1), 2),
                    limit_cpu_ms_per_image=round(limit.cpu_ms_per_image(), 2),
                )
            )
    return rows, singles


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, its threads and its live child processes
    (uvicorn ``--workers``) so far."""
    process = psutil.Process(pid)
    total = 0.0
    for member in (process, *process.children(recursive=True)):
        times = member.cpu_times()
        total += times.user + times.system
    return total


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's waited-for children (the ``hey`` runs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def photo() -> bytes:
    """The real cats-vs-dogs JPEG the benchmark sends (500x375, quality 90)."""
    from benchmarks.http.http_sizes import same_photo_sizes

    return same_photo_sizes()["500x375"]


def markdown(rows: list[Row], single_ms: float, route: str) -> str:
    lines = [
        f"| {route} | images/s | p50 ms | p99 ms | errors | limit images/s (same run) | ratio "
        "| CPU ms/image: server, hey, limit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.clients} client{'s' if r.clients > 1 else ''} | {r.images_per_s} | {r.p50_ms} | "
            f"{r.p99_ms} | {r.errors} | {r.limit_images_per_s} | {r.ratio} | "
            f"{r.server_cpu_ms_per_image}, {r.hey_cpu_ms_per_image}, {r.limit_cpu_ms_per_image} |"
        )
    lines.append(f"\nSingle image, no HTTP (service thread plan): p50 {single_ms:.2f} ms.")
    if rows and rows[0].clients == 1 and route == "single":
        lines.append(f"1 client p50 / single-image p50: {rows[0].p50_ms / single_ms:.2f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, required=True, help="directory of */manifest.json")
    parser.add_argument("--model", default="cats_vs_dogs")
    parser.add_argument("--route", choices=("single", "batch"), default="single")
    parser.add_argument("--batch-files", type=int, default=8, help="files per batch request")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="server runs per client count")
    parser.add_argument("--env", action="append", default=[], metavar="EDGE_X=V", help="server settings")
    parser.add_argument(
        "--uvicorn-arg", action="append", default=[], metavar="ARG", help="extra uvicorn argument"
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    if shutil.which("hey") is None:
        parser.error("needs hey on PATH (apt-get install hey)")
    from service.config import Settings

    manifest = args.model_dir / args.model / "manifest.json"
    jpeg = photo()
    if args.route == "single":
        path, count = f"/models/{args.model}/predict", 1
        body = multipart([("file", "photo.jpg", jpeg)])
    else:
        path, count = f"/models/{args.model}/predict/batch", args.batch_files
        body = multipart([("files", f"photo{i}.jpg", jpeg) for i in range(count)])
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    clients = [int(c) for c in args.clients.split(",")]
    env = {"EDGE_LOG_LEVEL": "WARNING", **dict(item.split("=", 1) for item in args.env)}
    budget = Settings().thread_plan({}).budget
    single = Single(manifest, jpeg)
    limit = Limit(manifest, jpeg, budget)
    try:
        with service_server(
            args.model_dir, env=env, uvicorn_args=("--no-access-log", *args.uvicorn_arg), timeout=120
        ) as server:
            plan = httpx.get(f"{server.url}/health").json()
            rows, singles = measure(
                server, path, body, content_type, count, limit, clients, args.seconds, args.rounds, single
            )
    finally:
        limit.close()
    result = {
        "command": " ".join(
            ["python -m benchmarks.http.throughput", *(argv if argv is not None else sys.argv[1:])]
        ),
        "cpu": cpu_info(),
        "cpu_budget": budget,
        "load_average": os.getloadavg(),
        "route": args.route,
        "images_per_request": count,
        "photo_bytes": len(jpeg),
        "server_env": env,
        "models": plan.get("models"),
        "single_image_ms": round(sum(singles) / len(singles), 2),
        "single_image_ms_runs": [round(v, 2) for v in singles],
        "rows": [asdict(r) for r in rows],
        "markdown": markdown(rows, sum(singles) / len(singles), args.route),
    }
    emit(result, args.json)
    return 0 if all(r.errors == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
