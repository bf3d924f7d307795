"""Child process of the cold-start benchmark: the floor a Lambda cold start cannot go below.

Run as ``python -I -S floor_cold.py TASK_ROOT RESULT_FD ort MODEL.onnx`` or
``... TASK_ROOT RESULT_FD fastapi``, with the Lambda package as TASK_ROOT (the same files the
handler imports). ``ort``: ``import numpy, onnxruntime``, create the session (the service's
options: all graph optimisations) and run it once on zeros of the model's input shape --
nothing of the service. ``fastapi``: ``import fastapi`` alone. Writes one JSON line (phase
seconds after the interpreter is up, peak RSS) to file descriptor RESULT_FD. Standalone on
purpose: nothing from the project is importable here.
"""

import time

started = time.perf_counter()  # the interpreter is up

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

task_root, result_fd, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, task_root)
phases = {}
if mode == "ort":
    import numpy as np
    import onnxruntime as ort

    phases["imports"] = time.perf_counter() - started
    mark = time.perf_counter()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(sys.argv[4], options, providers=["CPUExecutionProvider"])
    phases["session"] = time.perf_counter() - mark
    mark = time.perf_counter()
    spec = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in spec.shape]
    session.run(None, {spec.name: np.zeros(shape, dtype=np.float32)})
    phases["first_run"] = time.perf_counter() - mark
elif mode == "fastapi":
    import fastapi  # noqa: F401

    phases["import_fastapi"] = time.perf_counter() - started
else:
    raise SystemExit(f"unknown mode {mode!r}")
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
cpu = os.times()
with os.fdopen(result_fd, "w") as out:
    out.write(
        json.dumps(
            {"phases_s": phases, "peak_rss_bytes": peak_kib * 1024, "cpu_seconds": cpu.user + cpu.system}
        )
        + "\n"
    )
