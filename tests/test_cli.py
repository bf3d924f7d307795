"""The ``edge-infer`` command, run as a subprocess on real images: in-process and over HTTP."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.harness.paths import CATS_DOGS_DIR

from .seed_models import SeedModels
from .support import BUNDLED_MODELS, PROJECT_ROOT, encode, free_port, mnist_test_digits, running_server

EDGE_INFER = Path(sys.executable).parent / "edge-infer"
CORRUPT_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def run_cli(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    assert EDGE_INFER.exists(), f"{EDGE_INFER} missing: `uv sync` installs the project's console script"
    return subprocess.run(
        [str(EDGE_INFER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real MNIST test digits as PNGs in one sub-folder per class (``3/12.png``)."""
    root = tmp_path_factory.mktemp("digits")
    digits, labels = mnist_test_digits(40)
    for i, (digit, label) in enumerate(zip(digits, labels, strict=True)):
        (root / str(label)).mkdir(exist_ok=True)
        (root / str(label) / f"{i}.png").write_bytes(encode(digit))
    return root


@pytest.fixture(scope="module")
def pet_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 cat and 12 dog photos in ``cats/`` and ``dogs/`` (plural, like the shared data set)."""
    root = tmp_path_factory.mktemp("pets")
    for folder in ("cats", "dogs"):
        (root / folder).mkdir()
        for photo in sorted((CATS_DOGS_DIR / folder).glob("*.jpg"))[:12]:
            shutil.copyfile(photo, root / folder / photo.name)
    return root


def test_predict_folder_writes_csv_with_an_error_row_and_skips_non_images(
    digit_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "digits"
    shutil.copytree(digit_folder, folder)
    (folder / "3" / "broken.png").write_bytes(CORRUPT_PNG)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "results.csv"

    result = run_cli("predict", str(folder), "--model", "mnist", "--model-dir", str(BUNDLED_MODELS),
                     "--output", str(out))  # fmt: skip

    assert result.returncode == 1, result.stderr  # one image failed
    rows = read_csv(out)
    assert list(rows[0]) == ["path", "model", "prediction", "class_index", "confidence", "error"]
    assert len(rows) == 41
    broken = [r for r in rows if r["path"].endswith("broken.png")]
    assert len(broken) == 1 and broken[0]["error"].startswith("400: ") and broken[0]["prediction"] == ""
    good = [r for r in rows if not r["error"]]
    assert len(good) == 40
    correct = sum(Path(r["path"]).parent.name == r["prediction"] for r in good)
    assert correct >= 39  # the digit model scores 99.4 % on MNIST test
    assert all(0.0 <= float(r["confidence"]) <= 1.0 and r["model"] == "mnist" for r in good)
    assert "notes.txt" in result.stderr and "skipped 1" in result.stderr
    assert f"accuracy: {correct / 41:.4f} ({correct}/41" in result.stderr
    assert "images: 41, failures: 1" in result.stderr and "images/s" in result.stderr


def test_jsonl_has_the_prediction_object_with_top_k_and_exit_0(digit_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    pattern = str(digit_folder / "*" / "*.png")
    result = run_cli("predict", pattern, "--model", "mnist", "--model-dir", str(BUNDLED_MODELS),
                     "--top-k", "5", "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = read_jsonl(out)
    assert len(records) == 40
    for record in records:
        assert record["error"] is None and record["model"] == "mnist" and record["for_real_predictions"]
        assert len(record["top_k"]) == 5
        assert record["top_k"][0]["label"] == record["prediction"]
        assert record["top_k"][0]["probability"] == record["confidence"]
    # A glob gives no folder root, so no accuracy is claimed.
    assert "accuracy" not in result.stderr


def test_default_output_is_a_table_on_stdout(digit_folder: Path) -> None:
    one = sorted((digit_folder / "7").glob("*.png"))[0]
    result = run_cli("predict", str(one), "--model-dir", str(BUNDLED_MODELS))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["path", "prediction", "confidence"]
    assert row.split()[:2] == [str(one), "7"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "no/such/dir"], "no such file or folder"),
        (["predict", "no/such/*.png"], "no file matches"),
        (["predict", "README.md"], "no image files"),
        (["predict", "{digit}", "--output", "out.xlsx"], "--output must end in"),
        (["predict", "{digit}", "--model", "no_such_model"], "no model named 'no_such_model'"),
        (["predict", "{digit}", "--top-k", "0"], "must be at least 1"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str, digit_folder: Path) -> None:
    args = [a.replace("{digit}", str(digit_folder)) for a in args]
    result = run_cli(*args, EDGE_MODEL_DIR=str(BUNDLED_MODELS))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr


def test_models_in_process_and_over_http(server_url: str) -> None:
    local = run_cli("models", "--model-dir", str(BUNDLED_MODELS))
    remote = run_cli("models", "--url", server_url)
    assert local.returncode == remote.returncode == 0, (local.stderr, remote.stderr)
    assert local.stdout == remote.stdout
    assert local.stdout.startswith("mnist  v") and "(default)" in local.stdout


def test_in_process_and_server_give_identical_predictions(
    seed_models: SeedModels, pet_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pets"
    shutil.copytree(pet_folder, folder)
    a_dog = sorted((pet_folder / "dogs").iterdir())[0]
    (folder / "dogs" / "truncated.jpg").write_bytes(a_dog.read_bytes()[:500])
    local_out, remote_out = tmp_path / "local.jsonl", tmp_path / "remote.jsonl"

    local = run_cli("predict", str(folder), "--model", "cats_vs_dogs", "--model-dir", str(seed_models.served),
                    "--output", str(local_out), "--batch-size", "8")  # fmt: skip
    with running_server(seed_models.served) as server:
        remote = run_cli("predict", str(folder), "--model", "cats_vs_dogs", "--url", server.url,
                         "--output", str(remote_out), "--batch-size", "8", "--concurrency", "2")  # fmt: skip
        routes = {json.loads(line).get("route") for line in server.log_lines() if line.startswith("{")}
        has_batch = "/models/{name}/predict/batch" in httpx.get(server.url + "/openapi.json").json()["paths"]
    # 25 files in batches of 8: the batch route where the server has it, else one request each.
    expected = "/models/{name}/predict/batch" if has_batch else "/models/{name}/predict"
    assert expected in routes, routes

    assert local.returncode == remote.returncode == 1, (local.stderr, remote.stderr)
    local_rows, remote_rows = read_jsonl(local_out), read_jsonl(remote_out)
    assert [r["path"] for r in local_rows] == [r["path"] for r in remote_rows]
    assert len(local_rows) == 25
    for mine, theirs in zip(local_rows, remote_rows, strict=True):
        if mine["path"].endswith("truncated.jpg"):
            assert mine["error"].startswith("400: ") and theirs["error"].startswith("400: ")
            continue
        assert mine["prediction"] == theirs["prediction"], mine["path"]
        assert [t["label"] for t in mine["top_k"]] == [t["label"] for t in theirs["top_k"]]
        assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-6)
    # Plural folders name singular labels: cats/ -> cat, dogs/ -> dog.
    assert "accuracy: " in local.stderr and "(" in local.stderr
    truth = {"cats": "cat", "dogs": "dog"}
    correct = sum(r["prediction"] == truth[Path(r["path"]).parent.name] for r in local_rows if not r["error"])
    assert correct >= 22  # the model scores ~97-98 % on held-out photos
    assert f"({correct}/25, " in local.stderr


def test_busy_server_is_retried_after_retry_after(digit_folder: Path, tmp_path: Path) -> None:
    """One prediction admitted at a time, eight sent at once: 503 + Retry-After, retried until done."""
    out = tmp_path / "busy.csv"
    with running_server(BUNDLED_MODELS, EDGE_MAX_PENDING_PREDICTIONS="1") as server:
        result = run_cli(
            "predict", str(digit_folder), "--url", server.url, "--model", "mnist", "--batch-size", "1",
            "--concurrency", "8", "--retries", "60", "--output", str(out),
        )  # fmt: skip
        statuses = [json.loads(line).get("status") for line in server.log_lines() if line.startswith("{")]
    assert result.returncode == 0, result.stderr
    assert len(read_csv(out)) == 40 and not any(r["error"] for r in read_csv(out))
    assert 503 in statuses, "the server was never busy: the test did not exercise the retry"


def test_unreachable_server_rows_carry_the_error(digit_folder: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = run_cli("predict", str(digit_folder), "--url", f"http://127.0.0.1:{port}", "--retries", "1")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_serve_runs_the_service_with_the_page(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(EDGE_INFER), "serve", "--port", str(port), "--model-dir", str(BUNDLED_MODELS)],
        cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
        assert "edge-infer" in httpx.get(url + "/", timeout=5).text
        assert httpx.get(url + "/models", timeout=5).json()["default_model"] == "mnist"
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
