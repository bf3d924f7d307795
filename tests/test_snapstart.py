"""SnapStart hooks of the Lambda handler, run the way the Lambda Python runtime runs them.

Each check starts a fresh interpreter that imports the real handler (the init phase), then
calls ``awslambdaric.lambda_runtime_hooks_runner.run_before_snapshot`` and
``run_after_restore`` -- the runtime interface client's own code, which reads the lists that
``snapshot_restore_py`` keeps -- and then answers a real API Gateway event.
"""

from __future__ import annotations

import pytest

from .support import PROJECT_ROOT, encode, lambda_child, mnist_test_digits

pytest.importorskip("snapshot_restore_py")
pytest.importorskip("awslambdaric.lambda_runtime_hooks_runner")

CHILD = r"""
import json, random, sys, time
from tests.harness.lambda_events import LambdaContext, http_api_v2_event, multipart

import service.lambda_handler as lh  # the init phase
from snapshot_restore_py import get_after_restore, get_before_snapshot
from awslambdaric import lambda_runtime_hooks_runner

registered = {
    "before": [f.__name__ for f, _, _ in get_before_snapshot()],
    "after": [f.__name__ for f, _, _ in get_after_restore()],
}
session = lh.app.state.registry.ready["mnist"].session
runs = []
original_run = session.run
session.run = lambda *a, **k: runs.append(1) or original_run(*a, **k)  # count runs, keep them real
lambda_runtime_hooks_runner.run_before_snapshot()
runs_before_snapshot = len(runs)
random.seed(1234)  # what every copy restored from one snapshot would share
lambda_runtime_hooks_runner.run_after_restore()
draw = random.random()
content_type, body = multipart(open(sys.argv[1], "rb").read())
response = lh.handler(http_api_v2_event("/predict", body, content_type), LambdaContext())
print(json.dumps({"registered": registered, "runs_before_snapshot": runs_before_snapshot,
                  "draw": draw, "status": response["statusCode"], "body": json.loads(response["body"])}))
"""


@pytest.fixture(scope="module")
def restored(tmp_path_factory):
    """Two fresh processes, each through init -> before-snapshot -> after-restore -> a request."""
    images, labels = mnist_test_digits(1)
    upload = tmp_path_factory.mktemp("snap") / "digit.png"
    upload.write_bytes(encode(images[0]))
    results = [lambda_child(CHILD, str(upload), model_dir=PROJECT_ROOT / "models_onnx") for _ in range(2)]
    return results, int(labels[0])


def test_handler_registers_one_hook_of_each_kind(restored):
    results, _ = restored
    assert results[0]["registered"] == {"before": ["warm_sessions"], "after": ["refresh_after_restore"]}


def test_before_snapshot_runs_every_session_once(restored):
    results, _ = restored
    assert all(r["runs_before_snapshot"] == 1 for r in results)


def test_restored_copies_do_not_share_random_state(restored):
    results, _ = restored
    assert results[0]["draw"] != results[1]["draw"]


def test_restored_handler_answers_a_real_event(restored):
    results, label = restored
    for r in results:
        assert r["status"] == 200 and r["body"]["class_index"] == label
