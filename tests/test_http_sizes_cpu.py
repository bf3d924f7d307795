"""``tests.harness.servers.process_cpu_seconds``: a process's CPU time from the kernel's
per-thread schedstat, the load-independent number the HTTP size benchmark reports."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.harness.servers import process_cpu_seconds

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# Two threads burn 0.15 s of CPU each, then stay alive, idle, until the process is killed.
_BUSY_THEN_IDLE = """
import threading, time
burnt, stop = threading.Barrier(3), threading.Event()
def burn():
    end = time.thread_time() + 0.15
    while time.thread_time() < end:
        pass
    burnt.wait()
    stop.wait()
threads = [threading.Thread(target=burn, daemon=True) for _ in range(2)]
[t.start() for t in threads]
burnt.wait()
print("done", flush=True)
time.sleep(60)
"""


def test_counts_every_thread_of_a_busy_process_and_nothing_while_idle():
    child = subprocess.Popen([sys.executable, "-c", _BUSY_THEN_IDLE], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "done"
        busy = process_cpu_seconds(child.pid)
        assert busy is not None and 0.3 <= busy < 10  # both threads' 0.15 s, plus start-up
        time.sleep(0.2)
        idle = process_cpu_seconds(child.pid)
        assert idle is not None and idle - busy < 0.02
    finally:
        child.kill()
        child.wait()


def test_no_pid_or_a_gone_process_gives_none():
    assert process_cpu_seconds(None) is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_cpu_seconds(child.pid) is None
