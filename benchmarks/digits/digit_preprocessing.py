"""Digit preprocessing before and after issue 10, side by side in one run.

Measures, for the old preprocessing (``benchmarks/digits/digit_preprocessing_baseline.py``, the code
as of 18e570b) with the old model (``models_onnx/mnist/mnist.int8.onnx`` at 18e570b, read
with ``git show``) and for the new preprocessing with the committed model:

- accuracy on the phone-photo set of ``tests/harness/digit_photos.py`` (MNIST *test* digits, seed
  2026 as in ``tests/test_digit_photos.py``), overall and per condition;
- accuracy on the 10,000 clean MNIST test digits (PNG-decoded, as uploads);
- preprocessing time per image of a decoded 12 MP photo (4032 x 3024 RGB), old and new
  interleaved, wall-clock and thread CPU time (p50 / p90 over ``--runs`` calls each) and page
  faults per call. Timed as the server runs it: on a worker thread, right after decoding the
  upload there (a new image each call), with the server's allocator settings
  (``service.images.allocator``, applied when ``service.images.decode`` is imported; ``service`` is imported
  before numpy so OpenBLAS starts single-threaded, as in the server). The new code is also
  timed alone in a fresh process, as a server runs it (no other code's freed memory to reuse).

``--write-report`` replaces the "Phone photos" section of models_onnx/mnist/report.md.

Command: ``nice -n 10 .venv/bin/python -m benchmarks.digits.digit_preprocessing [--photos 300]``
"""

from __future__ import annotations

# isort: off
import service  # noqa: F401 - before numpy, as in the server: sets OPENBLAS_NUM_THREADS
# isort: on

import argparse
import collections
import functools
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
from PIL import Image

from benchmarks.digits import digit_preprocessing_baseline as baseline
from service.images.decode import decode_image
from service.images.preprocessing import decode_min_side
from service.images.preprocessing import digits as current
from service.manifest import Manifest, MnistDigitPreprocessing
from tests.harness.digit_photos import DigitPhoto, render_photo, render_photos
from tests.harness.digit_scenes import render_scenes
from tests.harness.paths import MNIST_NPZ, PROJECT_ROOT

BASELINE_COMMIT = "18e570b"
# The issue-10 preprocessing before the speed and vignette work (7.8 ms p50 at 12 MP served), read
# with ``git show`` and timed beside the current one, so both are measured under the same load.
PREVIOUS_COMMIT = "ab89ec2"
# main before issue 18 (sheet on a desk, rules, numbers): timed and scored beside today's code.
ISSUE18_BASE = "0d3d7b4"
MODEL = PROJECT_ROOT / "models_onnx" / "mnist" / "mnist.int8.onnx"
REPORT = PROJECT_ROOT / "models_onnx" / "mnist" / "report.md"
SECTION = "## Phone photos (tests/harness/digit_photos.py)"
SPEC = MnistDigitPreprocessing()
Preprocess = Callable[[Image.Image, MnistDigitPreprocessing], np.ndarray]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=300, help="photos in the set (first N test digits)")
    parser.add_argument("--twelve-mp", type=int, default=4, help="how many of them are 12 MP frames")
    parser.add_argument(
        "--scenes", type=int, default=200, help="issue-18 scenes (tests/harness/digit_scenes.py)"
    )
    parser.add_argument("--clean", type=int, default=10_000, help="clean MNIST test digits")
    parser.add_argument("--runs", type=int, default=40, help="timed calls per implementation")
    parser.add_argument("--write-report", action="store_true", help="update models_onnx/mnist/report.md")
    parser.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)  # see _time_alone
    args = parser.parse_args()
    if args.alone:
        _time_alone(args.runs)
        return

    with np.load(MNIST_NPZ) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    old_model, new_model = _session(_old_model_bytes()), _session(MODEL.read_bytes())
    # The service now decodes JPEGs at a reduced DCT scale (no side below min_side); before, fully.
    min_side = decode_min_side(Manifest.model_validate_json((MODEL.parent / "manifest.json").read_text()))
    issue18_base = _previous_digits(ISSUE18_BASE).mnist_digit_tensor
    systems = {
        "before (old preprocessing, old model)": (baseline.mnist_digit_tensor, old_model, None),
        "new preprocessing, old model": (current.mnist_digit_tensor, old_model, min_side),
        f"{ISSUE18_BASE} (before issue 18)": (issue18_base, new_model, min_side),
        "after (new preprocessing, new model)": (current.mnist_digit_tensor, new_model, min_side),
    }

    print(f"CPU: {_cpu()}; load average {os.getloadavg()[0]:.1f}", flush=True)
    timing = _time_twelve_mp(x_test[0], int(y_test[0]), args.runs, min_side)
    for name, (wall, cpu, faults) in timing.items():
        print(
            f"12 MP preprocessing, {name}: p50 {np.median(wall):.2f} ms (p90 {np.percentile(wall, 90):.2f}),"
            f" thread CPU p50 {np.median(cpu):.2f} ms, page faults p50 {np.median(faults):.0f}"
        )

    photos = render_photos(x_test[: args.photos], y_test[: args.photos], 2026, twelve_mp=args.twelve_mp)
    # The issue-18 scenes, from the next test digits (as tests/test_digit_photos.py draws them).
    scene_digits = slice(args.photos, args.photos + args.scenes)
    photos += render_scenes(x_test[scene_digits], y_test[scene_digits], 2026)
    decoded = {side: [decode_image(p.jpeg, 50_000_000, side) for p in photos] for side in (None, min_side)}
    clean = [Image.open(io.BytesIO(_png(d))) for d in x_test[: args.clean]]
    results = {}
    for name, (preprocess, session, side) in systems.items():
        hits = _hits(preprocess, session, decoded[side], [p.label for p in photos])
        clean_accuracy = float(np.mean(_hits(preprocess, session, clean, y_test[: args.clean])))
        results[name] = (hits, clean_accuracy)
        print(f"{name}: photos {np.mean(hits):.3f}, clean MNIST {clean_accuracy:.4f}", flush=True)

    table = _table(photos, results, timing, args)
    print(table)
    if args.write_report:
        _write_section(table)


def _time_twelve_mp(
    digit: np.ndarray, label: int, runs: int, min_side: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Old and new preprocessing of one 12 MP photo, interleaved call by call: decoded fully,
    and (new, and the issue-10 code of ``PREVIOUS_COMMIT``) decoded as the service now does
    (JPEG DCT scaling, sides >= ``min_side``); then the new code alone in a fresh process.
    Each: (wall ms, thread CPU ms, page faults) per call."""
    jpeg = _twelve_mp_jpeg(digit, label)
    previous = _previous_digits().mnist_digit_tensor
    before_issue18 = _previous_digits(ISSUE18_BASE).mnist_digit_tensor
    served_size = decode_image(jpeg, 50_000_000, min_side).size
    timed = {
        "old, full decode": (baseline.mnist_digit_tensor, None),
        "new, full decode": (current.mnist_digit_tensor, None),
        f"{PREVIOUS_COMMIT} (issue 10, before the speed work), served decode": (previous, min_side),
        f"{ISSUE18_BASE} (before issue 18), served decode": (before_issue18, min_side),
        f"new, served decode ({served_size[0]}x{served_size[1]})": (current.mnist_digit_tensor, min_side),
    }
    # The served-decode pair first, by itself: the full-decode calls leave glibc's heap holding
    # large free chunks that later working arrays reuse, which a server decoding only reduced
    # photos does not have (their page faults would vanish from the numbers).
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in timed}
    with ThreadPoolExecutor(max_workers=1) as worker:
        for phase in (min_side, None):
            for _ in range(runs):
                for name, (function, side) in timed.items():
                    if side == phase:
                        samples[name].append(worker.submit(_decode_and_time, jpeg, function, side).result())
    timing = {name: _columns(rows) for name, rows in samples.items()}
    # A server runs only the new code: its heap holds none of the old code's freed chunks.
    alone = subprocess.run(
        [sys.executable, "-m", "benchmarks.digits.digit_preprocessing", "--alone", "--runs", str(runs)],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = [tuple(row) for row in json.loads(alone)]
    timing["new, served decode, alone in a fresh process (as a server runs it)"] = _columns(rows)
    return timing


def _time_alone(runs: int) -> None:
    """Print (wall ms, thread CPU ms, page faults) of ``runs`` served-decode calls of the new
    code, as JSON: the ``--alone`` mode, run in a fresh process by ``_time_twelve_mp``."""
    with np.load(MNIST_NPZ) as data:
        digit, label = data["x_test"][0], int(data["y_test"][0])
    jpeg = _twelve_mp_jpeg(digit, label)
    min_side = decode_min_side(Manifest.model_validate_json((MODEL.parent / "manifest.json").read_text()))
    with ThreadPoolExecutor(max_workers=1) as worker:
        rows = [
            worker.submit(_decode_and_time, jpeg, current.mnist_digit_tensor, min_side).result()
            for _ in range(runs)
        ]
    print(json.dumps(rows))


def _twelve_mp_jpeg(digit: np.ndarray, label: int) -> bytes:
    return render_photo(digit, label, np.random.default_rng(7), frame=(4032, 3024)).jpeg


def _decode_and_time(jpeg: bytes, function: Preprocess, side: int | None) -> tuple[float, float, int]:
    """Decode ``jpeg`` (as the service does, on this worker thread), then time ``function`` on
    it: wall ms, thread CPU ms and minor page faults of this thread."""
    image = decode_image(jpeg, 50_000_000, side)
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    started, started_cpu = time.perf_counter(), time.thread_time()
    function(image, SPEC)
    cpu, wall = time.thread_time() - started_cpu, time.perf_counter() - started
    return wall * 1e3, cpu * 1e3, resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults


def _columns(rows: list[tuple[float, float, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wall, cpu, faults = (np.array(column) for column in zip(*rows, strict=True))
    return wall, cpu, faults


def _hits(preprocess: Preprocess, session: ort.InferenceSession, images: list, labels) -> np.ndarray:
    tensors = np.stack([preprocess(image, SPEC) for image in images])
    name = session.get_inputs()[0].name
    predictions = np.concatenate(
        [session.run(None, {name: tensors[i : i + 500]})[0] for i in range(0, len(tensors), 500)]
    ).argmax(axis=1)
    return predictions == np.asarray(labels)


def _table(photos: list[DigitPhoto], results: dict, timing: dict, args: argparse.Namespace) -> str:
    names = list(results)
    groups: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    for i, photo in enumerate(photos):
        for key, value in {"scene": "paper filling the frame", **photo.conditions}.items():
            groups[(key, value)].append(i)
    lines = [
        SECTION,
        "",
        f"{len(photos)} MNIST test digits rendered as phone photos (seed 2026, {args.twelve_mp} of them "
        f"12 MP; the last {args.scenes} are the scenes of tests/harness/digit_scenes.py: a sheet on a desk, "
        "ruled and squared paper, drawing-app screenshots; never used for training or tuning), and the "
        "clean MNIST test digits as PNG uploads. "
        f"'Before' is the preprocessing and model of {BASELINE_COMMIT} on fully decoded photos; the "
        "others decode as the service now does (JPEG DCT scaling down to the digit working side). "
        "Command: `python -m benchmarks.digits.digit_preprocessing --write-report`. "
        f"CPU: {_cpu()}.",
        "",
        "| condition | photos | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
        f"| **all photos** | {len(photos)} | "
        + " | ".join(f"**{np.mean(results[n][0]):.3f}**" for n in names)
        + " |",
        f"| clean MNIST test digits | {args.clean} | "
        + " | ".join(f"{results[n][1]:.4f}" for n in names)
        + " |",
    ]
    for (key, value), members in sorted(groups.items()):
        cells = " | ".join(f"{np.mean(results[n][0][members]):.3f}" for n in names)
        lines.append(f"| {key}: {value} | {len(members)} | {cells} |")
    lines += [
        "",
        "Preprocessing time per image of one 12 MP photo (4032 x 3024 JPEG), decoded fully and as "
        f"served, {args.runs} calls each, interleaved, on a worker thread that decodes each upload"
        " first; the last row is the new code alone in a fresh process:",
        "",
        "| implementation | wall p50 (ms) | wall p90 (ms) | thread CPU p50 (ms) | page faults p50 |",
        "|---|---|---|---|---|",
    ]
    lines.insert(-2, f"Load average (1 min) at the end of the run: {os.getloadavg()[0]:.1f}.\n")
    for name, (wall, cpu, faults) in timing.items():
        lines.append(
            f"| {name} | {np.median(wall):.2f} | {np.percentile(wall, 90):.2f} | {np.median(cpu):.2f}"
            f" | {np.median(faults):.0f} |"
        )
    return "\n".join(lines) + "\n"


def _write_section(section: str) -> None:
    text = REPORT.read_text()
    if SECTION in text:
        start = text.index(SECTION)
        following = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[following + 1 :] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    REPORT.write_text(text)
    print(f"updated {REPORT}")


@functools.cache
def _previous_digits(commit: str = PREVIOUS_COMMIT) -> types.ModuleType:
    """``service/images/preprocessing/digits.py`` as of ``commit``, as a module (its relative imports
    resolve to today's ``service`` package: manifest, color, components, workspace)."""
    source = subprocess.run(
        ["git", "show", f"{commit}:service/images/preprocessing/digits.py"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"service.images.preprocessing._digits_{commit}")
    module.__package__ = "service.images.preprocessing"
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{commit}:digits.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def _old_model_bytes() -> bytes:
    return subprocess.run(
        ["git", "show", f"{BASELINE_COMMIT}:models_onnx/mnist/mnist.int8.onnx"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    ).stdout


def _session(model: bytes) -> ort.InferenceSession:
    with tempfile.NamedTemporaryFile(suffix=".onnx") as file:
        file.write(model)
        file.flush()
        return ort.InferenceSession(file.name, providers=["CPUExecutionProvider"])


def _png(digit: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, format="PNG")
    return buffer.getvalue()


def _cpu() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs, " + "+".join(
        isa
    )


if __name__ == "__main__":
    main()
