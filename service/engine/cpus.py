"""How much CPU this process may use, and how to split it between inferences and their threads.

The budget, in whole CPUs (at least 1), is the smallest of:

- the CPUs the process may run on: ``os.sched_getaffinity(0)`` (taskset, cgroup cpusets),
  else ``os.cpu_count()``;
- a CPU *quota*, which Kubernetes CPU limits and ``docker run --cpus`` set through the CFS
  bandwidth controller: cgroup v2 ``cpu.max`` (``"<quota> <period>"`` or ``"max <period>"``,
  https://docs.kernel.org/admin-guide/cgroup-v2.html#cpu-interface-files) or cgroup v1
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (``-1`` = none,
  https://docs.kernel.org/scheduler/sched-bwc.html). The quota is quota/period CPUs, rounded
  down: a 1.5-CPU limit runs 1 busy thread without throttling, 2 would be throttled;
- on AWS Lambda, the share of a vCPU bought by the memory size
  (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, MB): "At 1,769 MB, a function has the equivalent of one
  vCPU (one vCPU-second of credits per second)"
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html), rounded down. Up
  to 3,008 MB the sandbox shows two vCPUs but pays for less than two.

A process that runs ``workers`` inferences at once, each with ``threads`` ONNX Runtime intra-op
threads, keeps ``workers * threads <= budget``: more runnable threads than CPUs only adds
context switches and, under a quota, throttling (ONNX Runtime threading guide:
https://onnxruntime.ai/docs/performance/tune-performance/threading.html).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Lambda: 1,769 MB of memory buys one vCPU-second per second (configuration-memory docs above).
LAMBDA_MB_PER_VCPU = 1769
CGROUP_ROOT = Path("/sys/fs/cgroup")


def visible_cpus() -> int:
    """CPUs this process may be scheduled on (affinity / cpuset aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def lambda_vcpus(environ: Mapping[str, str]) -> float | None:
    """vCPUs bought by the Lambda memory size (MB / 1,769); None outside Lambda or if unset."""
    memory = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if not memory.isdigit() or int(memory) <= 0:
        return None
    return int(memory) / LAMBDA_MB_PER_VCPU


def cgroup_quota_cpus(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CFS quota of this process's cgroup (and its ancestors), in CPUs; None when unlimited.

    Reads cgroup v2 ``cpu.max`` along the process's path in the unified hierarchy, else the
    cgroup v1 ``cpu`` controller's ``cpu.cfs_quota_us / cpu.cfs_period_us``. The tightest
    limit on the path wins (a parent's limit binds its children). Unreadable files count as
    no limit.
    """
    v2_path, v1_path = _cgroup_paths(proc_cgroup)
    limits: list[float] = []
    if v2_path is not None:
        for directory in _self_and_ancestors(root, v2_path):
            limits += _v2_limit(directory / "cpu.max")
    if not limits and v1_path is not None:
        for base in (root / "cpu", root / "cpu,cpuacct"):
            for directory in _self_and_ancestors(base, v1_path):
                limits += _v1_limit(directory)
    return min(limits) if limits else None


def cpu_budget(
    environ: Mapping[str, str] | None = None,
    visible: int | None = None,
    quota: float | None = None,
    check_cgroup: bool = True,
) -> int:
    """Whole CPUs this process should keep busy at most: see the module docstring. At least 1.

    Args:
        environ: the environment (default ``os.environ``), for Lambda's memory size.
        visible: CPUs visible to the process (default ``visible_cpus()``).
        quota: a CPU quota already known (default: read from the cgroup when ``check_cgroup``).
    """
    environ = os.environ if environ is None else environ
    budget = float(visible if visible is not None else visible_cpus())
    if quota is None and check_cgroup:
        quota = cgroup_quota_cpus()
    for limit in (quota, lambda_vcpus(environ)):
        if limit is not None:
            budget = min(budget, limit)
    return max(1, math.floor(budget + 1e-9))


@dataclass(frozen=True)
class ThreadPlan:
    """``workers`` threads that decode/preprocess (and, without batching, also run) requests at
    once, ``intra_op_threads`` ONNX Runtime threads per call, and ``runners`` batched ONNX
    Runtime calls per model at once (dynamic batching; 1 otherwise unused)."""

    workers: int
    intra_op_threads: int
    budget: int
    runners: int = 1


def plan_threads(
    budget: int, intra_op_threads: int = 0, workers: int = 0, *, batching: bool = False, runners: int = 0
) -> ThreadPlan:
    """Split ``budget`` CPUs between concurrent requests and ONNX Runtime's intra-op threads.

    0 means "choose". Without batching (Lambda), one inference at a time uses every CPU
    (lowest latency per request; Lambda serves one request per environment anyway). Given
    only one of workers / threads, the other is ``budget // given`` (at least 1). Explicit
    values for both are taken as they are, even when their product exceeds the budget: the
    operator decided.

    With dynamic batching the workers only decode and preprocess, and the model runs in the
    batcher: ``budget`` workers (one image per CPU while a batch runs), one runner per model
    with ``budget`` intra-op threads (a lone request gets today's latency; under load the
    batch grows instead of the number of runs, so runs never compete for CPUs). The decode
    threads and ONNX Runtime's pool are both sized to the budget but alternate rather than
    overlap: a request is decoded, then waits while its batch runs.
    """
    if batching:
        threads = intra_op_threads or budget
        return ThreadPlan(workers or budget, threads, budget, runners or max(1, budget // threads))
    if intra_op_threads and workers:
        return ThreadPlan(workers, intra_op_threads, budget)
    if workers:
        return ThreadPlan(workers, max(1, budget // workers), budget)
    if intra_op_threads:
        return ThreadPlan(max(1, budget // intra_op_threads), intra_op_threads, budget)
    return ThreadPlan(1, budget, budget)


def _cgroup_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(unified v2 path, v1 ``cpu`` controller path) from /proc/self/cgroup lines."""
    v2 = v1 = None
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _self_and_ancestors(base: Path, path: str) -> list[Path]:
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_limit(cpu_max: Path) -> list[float]:
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return []
    if quota == "max" or int(period) <= 0:
        return []
    return [int(quota) / int(period)]


def _v1_limit(directory: Path) -> list[float]:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return []
    if quota <= 0 or period <= 0:
        return []
    return [quota / period]
