"""A 12 MP phone upload against its floor, over HTTP, in one run (issue 19, item 5).

    python -m benchmarks.http.upload_floor --model DIR/cats_vs_dogs
    python -m benchmarks.http.upload_floor --model DIR/cats_vs_dogs --baseline-root ../main  # before/after

The floor of the 12 MP request is the small request (the 500x375 copy of the same photo) plus the
work no DCT scale skips: the decode of the 12 MP file at the scale the service asks for
(``decode_min_side``: 1/8 for 224x224) minus the small file's decode, both measured here in this
process. ``ratio = p50(12 MP over HTTP) / floor``; target <= 1.15. The photos are
``http_sizes.same_photo_sizes`` (one real cats-vs-dogs photo; the 12 MP copy with sensor-like
noise weighs what a phone JPEG does). Requests go over one kept-alive connection as multipart
uploads (``curl -F``), the sizes (and, with ``--baseline-root``, the two servers) interleaved
request by request so that both see the same load from the rest of the machine. The same
quotient is also given in CPU time (the server's threads, ``/proc/PID/task/*/schedstat``, against
this thread's ``thread_time`` for the decodes), which does not depend on the share of a machine
shared with other load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import httpx

from benchmarks.http.http_sizes import PHONE_LABEL, same_photo_sizes
from benchmarks.output import emit
from convert.cpu import cpu_info
from tests.harness.paths import PROJECT_ROOT
from tests.harness.servers import model_server, process_cpu_seconds
from tests.harness.stats import percentile

SMALL = "500x375"
TARGET = 1.15


def decode_ms(
    manifest_path: Path, photos: dict[str, bytes], runs: int
) -> tuple[dict[str, float], dict[str, float]]:
    """(p50 ms, p50 CPU ms) of the service's decode (reduced DCT scale) of each photo, interleaved."""
    from service.images.decode import decode_image
    from service.images.preprocessing import decode_min_side
    from service.manifest import Manifest

    min_side = decode_min_side(Manifest.model_validate_json(manifest_path.read_bytes()))
    times: dict[str, list[float]] = {label: [] for label in photos}
    cpu: dict[str, list[float]] = {label: [] for label in photos}
    for i in range(runs + 3):
        for label, data in photos.items():
            start, cpu_start = time.perf_counter(), time.thread_time()
            decode_image(data, 40_000_000, min_side=min_side)
            if i >= 3:
                times[label].append(time.perf_counter() - start)
                cpu[label].append(time.thread_time() - cpu_start)
    return (
        {label: percentile(t, 50) * 1000 for label, t in times.items()},
        {label: percentile(t, 50) * 1000 for label, t in cpu.items()},
    )


def http_ms(
    urls: dict[str, str], pids: dict[str, int], photos: dict[str, bytes], runs: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """({server: {photo: p50 ms}}, {server: {photo: p50 server CPU ms}}) of multipart uploads,
    interleaved server by server, photo by photo."""
    times: dict[str, dict[str, list[float]]] = {s: {p: [] for p in photos} for s in urls}
    cpu: dict[str, dict[str, list[float]]] = {s: {p: [] for p in photos} for s in urls}
    with contextlib.ExitStack() as stack:
        clients = {s: stack.enter_context(httpx.Client(timeout=120)) for s in urls}
        for i in range(runs + 3):
            for server, url in urls.items():
                for label, data in photos.items():
                    cpu_start = process_cpu_seconds(pids[server]) or 0.0
                    start = time.perf_counter()
                    response = clients[server].post(url, files={"file": (f"{label}.jpg", data, "image/jpeg")})
                    elapsed = time.perf_counter() - start
                    cpu_used = (process_cpu_seconds(pids[server]) or 0.0) - cpu_start
                    if response.status_code != 200:
                        raise RuntimeError(f"{server} answered {response.status_code}: {response.text[:200]}")
                    if i >= 3:
                        times[server][label].append(elapsed)
                        cpu[server][label].append(cpu_used)

    def p50s(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {
            s: {p: percentile(t, 50) * 1000 for p, t in by_photo.items()} for s, by_photo in samples.items()
        }

    return p50s(times), p50s(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, metavar="DIR", help="a model directory")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument(
        "--baseline-root", type=Path, help="another checkout's service/ to serve beside this one"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = same_photo_sizes()
    photos = {SMALL: sizes[SMALL], PHONE_LABEL: sizes[PHONE_LABEL]}
    roots = {
        "this": PROJECT_ROOT,
        **({"baseline": args.baseline_root.resolve()} if args.baseline_root else {}),
    }
    with contextlib.ExitStack() as stack:
        urls, pids = {}, {}
        for name, root in roots.items():
            server = stack.enter_context(model_server([args.model], {}, root))
            urls[name] = f"{server.url}/models/{args.model.name}/predict"
            pids[name] = server.process.pid
        decode, decode_cpu = decode_ms(args.model / "manifest.json", photos, args.runs)
        http, http_cpu = http_ms(urls, pids, photos, args.runs)
        after, after_cpu = decode_ms(args.model / "manifest.json", photos, args.runs)
    decode = {label: (decode[label] + after[label]) / 2 for label in photos}
    decode_cpu = {label: (decode_cpu[label] + after_cpu[label]) / 2 for label in photos}
    servers = {}
    for name, p50 in http.items():
        floor = p50[SMALL] + decode[PHONE_LABEL] - decode[SMALL]
        cpu = http_cpu[name]
        cpu_floor = cpu[SMALL] + decode_cpu[PHONE_LABEL] - decode_cpu[SMALL]
        servers[name] = {
            "p50_ms": {label: round(v, 2) for label, v in p50.items()},
            "floor_ms": round(floor, 2),
            "ratio_to_floor": round(p50[PHONE_LABEL] / floor, 3),
            "server_cpu_p50_ms": {label: round(v, 2) for label, v in cpu.items()},
            "cpu_floor_ms": round(cpu_floor, 2),
            "cpu_ratio_to_floor": round(cpu[PHONE_LABEL] / cpu_floor, 3),
        }
    result = {
        "command": " ".join(
            ["python -m benchmarks.http.upload_floor", *(argv if argv is not None else sys.argv[1:])]
        ),
        "cpu": cpu_info(),
        "load_average": os.getloadavg(),
        "photo_bytes": {label: len(data) for label, data in photos.items()},
        "decode_p50_ms": {label: round(v, 2) for label, v in decode.items()},
        "decode_cpu_p50_ms": {label: round(v, 2) for label, v in decode_cpu.items()},
        "servers": servers,
        "target": TARGET,
    }
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
