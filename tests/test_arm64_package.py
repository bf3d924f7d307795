"""The arm64 (Graviton) Lambda zip answers real API Gateway events under emulation, with the
predictions the x86-64 server gives (same top-1, probabilities within int8 tolerance).

The zip is built for Lambda's ``python3.13`` runtime on ``aarch64-manylinux_2_34`` wheels,
extracted, and imported by Debian's aarch64 CPython 3.13 under QEMU user mode with a Neoverse N1
(Graviton2) CPU model: ``infra.emulation``. The x86-64 side is the real uvicorn server over the
same model. Emulation is slow (imports take ~15-40 s), so all events go in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest

from infra import emulation
from infra.package import build
from tests.harness.lambda_events import http_api_v2_event, multipart, rest_api_v1_event

from .package_support import require_tools
from .support import BUNDLED_MODELS, encode, mnist_test_digits
from .test_lambda_package import DRIVER

# int8 kernels differ between x86-64 (AVX2/VNNI) and aarch64 (NEON/dot-product) in rounding of
# requantized intermediates; the same class must win and probabilities stay this close.
PROBABILITY_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def arm64_task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools(emulation.missing_tools(), emulation.ENABLE_HINT, "the arm64 emulation test")
    workdir = tmp_path_factory.getbasetemp() / "arm64-package"
    result = build(
        out=workdir / "build",
        arch="arm64",
        model_dirs=[BUNDLED_MODELS / "mnist"],
        python_version=emulation.PYTHON_VERSION,
    )
    assert result.report["platform"] == "aarch64-manylinux_2_34"
    task_root = workdir / "task"
    with zipfile.ZipFile(result.zip_path) as archive:
        for info in archive.infolist():
            archive.extract(info, task_root)
            (task_root / info.filename).chmod((info.external_attr >> 16) & 0o777)
    return task_root


def test_arm64_package_answers_events_like_x86_64(
    arm64_task_root: Path, http: httpx.Client, tmp_path: Path
) -> None:
    root = emulation.aarch64_root()
    digits, labels = mnist_test_digits(6)
    uploads = [encode(d, "PNG") for d in digits]
    events = []
    for i, image in enumerate(uploads):
        content_type, body = multipart(image)
        make = http_api_v2_event if i % 2 == 0 else rest_api_v1_event
        events.append(make("/models/mnist/predict", body, content_type, query="top_k=10"))
    events.append(http_api_v2_event("/health", b"", "application/json", method="GET"))
    (tmp_path / "events.json").write_text(json.dumps(events))

    argv, env = emulation.python_command(root)
    completed = subprocess.run(
        [*argv, "-I", "-S", "-c", DRIVER, str(tmp_path / "events.json"), str(tmp_path / "out.json")],
        cwd=arm64_task_root,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LAMBDA_TASK_ROOT": str(arm64_task_root),
            "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
            "AWS_REGION": "us-east-1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["heavy"] == [] and out["outside"] == [], out

    *predictions, health = out["responses"]
    deltas = []
    assert health["statusCode"] == 200 and json.loads(health["body"])["models"] == ["mnist"]
    for response, image in zip(predictions, uploads, strict=True):
        assert response["statusCode"] == 200, response
        arm = json.loads(response["body"])
        x86 = http.post(
            "/models/mnist/predict", params={"top_k": 10}, files={"file": ("d.png", image, "image/png")}
        ).json()
        assert arm["prediction"] == x86["prediction"]
        arm_probs = {r["class_index"]: r["probability"] for r in arm["top_k"]}
        x86_probs = {r["class_index"]: r["probability"] for r in x86["top_k"]}
        assert arm_probs.keys() == x86_probs.keys()
        worst = max(abs(arm_probs[k] - x86_probs[k]) for k in arm_probs)
        assert worst <= PROBABILITY_TOLERANCE, (arm_probs, x86_probs)
        deltas.append(worst)
    print(f"arm64 vs x86_64: {len(deltas)} digits, same top-1, max |dprob| per digit {deltas}")
    # The digit model reads the first MNIST test digit (a 7) right on arm64 too.
    assert json.loads(predictions[0]["body"])["prediction"] == str(int(labels[0]))
