"""Peers side by side: the same ONNX file in ONNX Runtime and in OpenVINO, same process, same run.

    python -m benchmarks.in_process.peers --python /work/venv-openvino/bin/python \\
        --onnx DIR/cats_vs_dogs/cats_vs_dogs.int8.onnx --onnx BUILD/cats_vs_dogs.fp32.onnx \\
        --manifest DIR/cats_vs_dogs/manifest.json

OpenVINO (https://docs.openvino.ai/, ``openvino`` on PyPI) reads QDQ ONNX files directly; it is
never a dependency of the service, so the timing runs in a child interpreter of a separate
virtual environment (``--python``) that has ``openvino``, ``onnxruntime`` and ``numpy``. This
process only prepares the input: a real cats-vs-dogs photo through the service's own ``prepare``
(decode + resize + normalise), repeated to a batch of 1 and of 8.

Variants, timed interleaved round by round (p50 and min ms per call, ``--runs`` calls each; on
a machine shared with other load the min is the less disturbed of the two):

- ``ort``: ONNX Runtime with the service's session options (``service.engine.registry.session_options``:
  all graph optimisations, sequential, no spinning) and the thread plan's intra-op threads;
- ``ort_spin``: the same with intra-op spinning allowed (idle threads busy-wait: lower latency,
  CPU burnt between requests, which Lambda bills);
- ``openvino``: ``core.compile_model(path, "CPU")`` with ``INFERENCE_NUM_THREADS`` = the same
  thread count and the ``LATENCY`` performance hint; its default inference precision (bf16 on
  CPUs with AVX-512 BF16 / AMX for fp32 graphs; int8 graphs run their quantised ops in int8).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.output import emit
from convert.cpu import cpu_info
from tests.harness.paths import CATS_DOGS_DIR

BATCHES = (1, 8)

CHILD = r"""
import json, sys, time
import numpy as np
import onnxruntime as ort
import openvino as ov

paths, inputs_path, threads, runs = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sample = np.load(inputs_path)

def ort_session(path, spin):
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]

core = ov.Core()
def ov_model(path):
    c = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    request = c.create_infer_request()
    def call(x):
        request.infer({0: x})
        return request.get_output_tensor(0).data
    return call, str(c.get_property("INFERENCE_PRECISION_HINT"))

out = {"versions": {"onnxruntime": ort.__version__, "openvino": ov.__version__}, "models": {}}
for path in paths:
    ov_call, precision = ov_model(path)
    variants = {"ort": ort_session(path, False), "ort_spin": ort_session(path, True), "openvino": ov_call}
    times = {(v, b): [] for v in variants for b in (1, 8)}
    batches = {b: np.ascontiguousarray(np.repeat(sample, b, axis=0)) for b in (1, 8)}
    reference = {b: variants["ort"](batches[b]) for b in batches}
    agree = {}
    for b, x in batches.items():
        agree[b] = float(np.abs(np.asarray(variants["openvino"](x)) - reference[b]).max())
    for i in range(runs + 5):
        for b, x in batches.items():
            for v, call in variants.items():
                t = time.perf_counter(); call(x); dt = time.perf_counter() - t
                if i >= 5:
                    times[(v, b)].append(dt)
    out["models"][path] = {
        "openvino_inference_precision": precision,
        "max_abs_output_diff_openvino_vs_ort": agree,
        "p50_ms": {f"{v}_batch{b}": round(float(np.median(t)) * 1000, 3) for (v, b), t in times.items()},
        "min_ms": {f"{v}_batch{b}": round(float(np.min(t)) * 1000, 3) for (v, b), t in times.items()},
    }
print(json.dumps(out))
"""


def real_input(manifest: Path) -> np.ndarray:
    """float32 (1, *sample_shape): a real cats-vs-dogs photo through the service's preprocessing."""
    from service.images.decode import decode_image
    from service.images.preprocessing import decode_min_side, preprocess
    from service.manifest import Manifest

    spec = Manifest.model_validate_json(manifest.read_bytes())
    photo = sorted((CATS_DOGS_DIR / "cats").glob("*.jpg"))[0].read_bytes()
    return preprocess(decode_image(photo, 40_000_000, min_side=decode_min_side(spec)), spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", required=True, help="interpreter of the venv with openvino + onnxruntime")
    parser.add_argument("--onnx", type=Path, action="append", required=True, help="ONNX files (same input)")
    parser.add_argument("--manifest", type=Path, required=True, help="manifest of the model (preprocessing)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from service.config import Settings

    threads = Settings(dynamic_batching=False).thread_plan({}).intra_op_threads
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        inputs = Path(tmp) / "input.npy"
        np.save(inputs, real_input(args.manifest))
        paths = json.dumps([str(p.resolve()) for p in args.onnx])
        done = subprocess.run(
            [args.python, "-c", CHILD, paths, str(inputs), str(threads), str(args.runs)],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(
        command=" ".join(
            ["python -m benchmarks.in_process.peers", *(argv if argv is not None else sys.argv[1:])]
        ),
        cpu=cpu_info(),
        intra_op_threads=threads,
        load_average=os.getloadavg(),
    )
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
