"""Child process of the cold-start benchmark: import the packaged handler, invoke it once.

Run as ``python -I -S lambda_cold.py TASK_ROOT EVENT_JSON RESULT_FD``: the interpreter sees
only the package (as ``/var/task``), like a Lambda cold start. The response and this process's
peak RSS are written as one JSON line to file descriptor RESULT_FD (stdout carries the
service's logs). Standalone on purpose: nothing from the project is importable here.
"""

import json
import os
import sys

task_root, event_path, result_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, task_root)
with open(event_path) as f:
    event = json.load(f)

from service.lambda_handler import handler  # noqa: E402 - the import is what is measured


class Context:
    function_name = "edge-infer"
    memory_limit_in_mb = 2048
    aws_request_id = "cold-start"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:edge-infer"

    def get_remaining_time_in_millis(self):
        return 30000


response = handler(event, Context())
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over execve, so it would report the
# (large) benchmark parent that forked this process.
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
with os.fdopen(result_fd, "w") as out:
    out.write(json.dumps({"response": response, "peak_rss_bytes": peak_kib * 1024}) + "\n")
