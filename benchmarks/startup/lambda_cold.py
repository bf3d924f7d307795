"""Child process of the cold-start benchmark: import the packaged handler, invoke it once.

Run as ``python -I -S lambda_cold.py TASK_ROOT EVENT_JSON RESULT_FD``: the interpreter sees
only the package (as ``/var/task``), like a Lambda cold start. The response, this process's
peak RSS, CPU time and the time of each phase (imports = until ``service.app`` is imported;
init = the rest of importing ``service.lambda_handler``, which builds the app and loads the
models; the first invocation) are written as one JSON line to file descriptor RESULT_FD
(stdout carries the service's logs). Standalone on purpose: nothing from the project is importable here.
"""

import time

started = time.perf_counter()  # the interpreter is up: everything before is Python's own start

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

task_root, event_path, result_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, task_root)
with open(event_path) as f:
    event = json.load(f)


class _MarkAppImported:
    """Notes when ``service.app`` (the imports: FastAPI, pydantic, ONNX Runtime, numpy, Pillow) is
    done, so the handler can be imported the way the Lambda runtime does -- that module alone,
    everything it sets up before its imports included -- and still be timed in two phases."""

    def find_spec(self, name, path=None, target=None):
        if name != "service.app":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def timed(module):
            exec_module(module)
            marks["imported"] = time.perf_counter()

        spec.loader.exec_module = timed
        return spec


marks = {}
sys.meta_path.insert(0, _MarkAppImported())
from service.lambda_handler import handler  # noqa: E402 - imports, builds the app, loads the models

initialised = time.perf_counter()
imported = marks["imported"]


class Context:
    function_name = "edge-infer"
    memory_limit_in_mb = 2048
    aws_request_id = "cold-start"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:edge-infer"

    def get_remaining_time_in_millis(self):
        return 30000


response = handler(event, Context())
answered = time.perf_counter()
cpu = os.times()
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over execve, so it would report the
# (large) benchmark parent that forked this process.
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
with os.fdopen(result_fd, "w") as out:
    result = {
        "response": response,
        "peak_rss_bytes": peak_kib * 1024,
        "cpu_seconds": cpu.user + cpu.system,
        "phases_s": {
            "imports": imported - started,
            "init": initialised - imported,
            "first_invoke": answered - initialised,
        },
    }
    out.write(json.dumps(result) + "\n")
