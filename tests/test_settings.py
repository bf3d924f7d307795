"""Settings: read from EDGE_* variables, validated as a whole, refused at start-up when wrong;
the CPU budget and the thread plan derived from it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from service.config import Settings
from service.engine.cpus import cgroup_quota_cpus, cpu_budget, lambda_vcpus, plan_threads

from .support import encode, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(1)


def test_environment_values_are_parsed_like_before() -> None:
    settings = Settings.from_env(
        {
            "EDGE_API_KEYS": " k1 , k2,,",
            "EDGE_CORS_ORIGINS": "https://a.example,https://b.example",
            "EDGE_METRICS_ENABLED": "false",
            "EDGE_LOG_JSON": "0",
            "edge_max_top_k": "7",  # names are case-insensitive
            "EDGE_MODEL_DIR": "models_onnx/../models_onnx",
            "EDGE_NOT_A_SETTING": "ignored",
            "HOME": "/root",
        }
    )
    assert [k.get_secret_value() for k in settings.api_keys] == ["k1", "k2"]
    assert "k1" not in repr(settings)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.metrics_enabled is False and settings.log_json is False
    assert settings.max_top_k == 7
    assert settings.model_dir.is_absolute() and ".." not in settings.model_dir.parts


def test_default_top_k_over_max_top_k_is_refused_naming_both_values() -> None:
    with pytest.raises(ValidationError, match=r"default_top_k \(5\) must not exceed max_top_k \(3\)"):
        Settings.from_env({"EDGE_DEFAULT_TOP_K": "5", "EDGE_MAX_TOP_K": "3"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EDGE_MAX_BODY_BYTES", "0", "max_body_bytes\n  Input should be greater than 0"),
        ("EDGE_MAX_IMAGE_PIXELS", "-1", "max_image_pixels\n  Input should be greater than 0"),
        ("EDGE_MAX_PENDING_PREDICTIONS", "0", "greater than or equal to 1"),
        ("EDGE_DEFAULT_TOP_K", "0", "greater than or equal to 1"),
        ("EDGE_INTRA_OP_THREADS", "-2", "greater than or equal to 0"),
        ("EDGE_METRICS_ENABLED", "maybe", "valid boolean"),
    ],
)
def test_out_of_range_values_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.from_env({name: value})


def test_the_server_refuses_to_start_with_bad_settings() -> None:
    bad = {"EDGE_DEFAULT_TOP_K": "5", "EDGE_MAX_TOP_K": "3", "EDGE_API_KEYS": "do-not-print-me"}
    with pytest.raises(RuntimeError) as refused, running_server(**bad):
        pytest.fail("the server started")
    message = str(refused.value)
    assert "server exited with 1" in message
    assert "default_top_k (5) must not exceed max_top_k (3)" in message
    assert "do-not-print-me" not in message  # the refused values are not echoed into logs


def test_an_unknown_default_model_degrades_health_with_the_reason() -> None:
    with running_server(EDGE_DEFAULT_MODEL="mnistt") as server:
        health = httpx.get(f"{server.url}/health").json()
        assert health["status"] == "degraded"
        assert health["models"] == ["mnist"]
        assert health["unavailable"] == [
            {
                "name": "mnistt",
                "reason": "EDGE_DEFAULT_MODEL names no model found in the model directory (served: mnist)",
            }
        ]
        refused = httpx.post(f"{server.url}/predict", content=encode(DIGITS[0]))
        assert refused.status_code == 404
        named = httpx.post(f"{server.url}/models/mnist/predict", content=encode(DIGITS[0]))
        assert named.json()["prediction"] == str(LABELS[0])


# --- CPU budget and threads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory_mb", "visible", "budget"),
    [
        ("128", 2, 1),  # a fraction of a vCPU: still one thread
        ("1769", 2, 1),  # exactly one vCPU (AWS: 1,769 MB = 1 vCPU-second per second)
        ("3008", 2, 1),  # two vCPUs visible, 1.7 paid for: one busy thread
        ("3538", 2, 2),
        ("10240", 6, 5),  # 5.79 vCPUs of the 6 visible
        ("10240", 2, 2),  # capped by what is visible
    ],
)
def test_lambda_budget_follows_memory_size(memory_mb: str, visible: int, budget: int) -> None:
    environ = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory_mb}
    assert cpu_budget(environ, visible=visible, check_cgroup=False) == budget


def test_outside_lambda_the_budget_is_the_visible_cpus() -> None:
    assert lambda_vcpus({}) is None
    assert cpu_budget({}, visible=3, check_cgroup=False) == 3
    assert cpu_budget({}, visible=8, quota=2.5) == 2  # a 2.5-CPU Kubernetes limit


def _cgroup_tree(tmp_path: Path, files: dict[str, str], proc: str) -> tuple[Path, Path]:
    for relative, text in files.items():
        path = tmp_path / "fs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "cgroup").write_text(proc)
    return tmp_path / "fs", tmp_path / "cgroup"


def test_cgroup_v2_cpu_max_tightest_on_the_path(tmp_path: Path) -> None:
    root, proc = _cgroup_tree(
        tmp_path,
        {
            "cpu.max": "max 100000\n",
            "kubepods/cpu.max": "300000 100000\n",
            "kubepods/pod1/cpu.max": "150000 100000\n",
        },
        "0::/kubepods/pod1\n",
    )
    assert cgroup_quota_cpus(root, proc) == pytest.approx(1.5)


def test_cgroup_v2_without_a_limit(tmp_path: Path) -> None:
    root, proc = _cgroup_tree(tmp_path, {"cpu.max": "max 100000\n"}, "0::/\n")
    assert cgroup_quota_cpus(root, proc) is None


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    files = {
        "cpu,cpuacct/docker/c1/cpu.cfs_quota_us": "200000\n",
        "cpu,cpuacct/docker/c1/cpu.cfs_period_us": "100000\n",
    }
    root, proc = _cgroup_tree(tmp_path, files, "4:memory:/docker/c1\n3:cpu,cpuacct:/docker/c1\n")
    assert cgroup_quota_cpus(root, proc) == pytest.approx(2.0)
    unlimited = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    root, proc = _cgroup_tree(tmp_path / "u", unlimited, "1:cpu:/\n")
    assert cgroup_quota_cpus(root, proc) is None


@pytest.mark.parametrize(
    ("budget", "threads", "workers", "plan"),
    [
        (4, 0, 0, (1, 4)),  # default: one inference at a time on every CPU
        (4, 0, 2, (2, 2)),
        (4, 0, 3, (3, 1)),
        (4, 2, 0, (2, 2)),
        (1, 0, 4, (4, 1)),  # explicit workers beyond the budget: one thread each
        (2, 3, 3, (3, 3)),  # both explicit: the operator decided
    ],
)
def test_thread_plan_never_oversubscribes_unless_told(
    budget: int, threads: int, workers: int, plan: tuple[int, int]
) -> None:
    result = plan_threads(budget, threads, workers)
    assert (result.workers, result.intra_op_threads) == plan
    if not (threads and workers) and workers <= budget:
        assert result.workers * result.intra_op_threads <= budget


def test_this_machine_plan_fits_its_budget() -> None:
    plan = Settings(dynamic_batching=False).thread_plan({})
    assert plan.budget == cpu_budget({})
    assert plan.workers * plan.intra_op_threads <= plan.budget
    # Batching: the workers only decode; ONNX Runtime runs in the batcher's runners.
    batched = Settings(dynamic_batching=True).thread_plan({})
    assert batched.runners * batched.intra_op_threads <= batched.budget
    assert batched.workers <= batched.budget
