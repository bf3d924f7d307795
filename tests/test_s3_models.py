"""Models from a real S3 API: ``EDGE_MODEL_DIR=s3://bucket/prefix/`` against moto's server on
loopback, through boto3 (credentials and endpoint from the environment, as in production).

One bucket holds a good model and one broken each way the store can break it: a tampered file
(sha256), a read denied by an IAM policy, a missing object, a key that climbs out of the
prefix (``../``), and an ONNX file whose external data points outside its folder. The real
app serves the good one over HTTP and names each other one in ``/health`` with its reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.engine.model_sources import STORE_ENTRY, S3Location, fetch_s3_models
from service.engine.registry import load_registry
from tests.harness.servers import service_server

from .s3_support import MotoServer, moto_server
from .support import BUNDLED_MODELS, encode, mnist_test_digits

BUCKET = "models"
PREFIX = "prod/"
MNIST = BUNDLED_MODELS / "mnist"


def _manifest(name: str, **changes: object) -> dict:
    manifest = json.loads((MNIST / "manifest.json").read_text())
    return {**manifest, "name": name, **changes}


def _put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=body)


def _external_data_model() -> tuple[bytes, dict]:
    """A valid ONNX graph (y = x + w) whose initializer ``w`` is external data at
    ``../secret.bin``: outside the model's folder. Returns (file bytes, manifest)."""
    import hashlib

    pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    weight = numpy_helper.from_array(np.ones((1, 28, 28, 1), np.float32), "w")
    set_external_data(weight, location="../secret.bin", offset=0, length=28 * 28 * 4)
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "w"], ["probabilities"])],
        "leaky",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 28, 28, 1])],
        [weight],
    )
    data = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()
    manifest = _manifest(
        "leaky", file="leaky.onnx", sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)
    )
    return data, manifest


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, dict[str, dict[str, str]]]]:
    """The bucket, filled; IAM enforced. Yields (server, {user: its keys})."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as moto:
        s3 = moto.client()
        s3.create_bucket(Bucket=BUCKET)
        model = (MNIST / "mnist.int8.onnx").read_bytes()
        _put(s3, "mnist/manifest.json", (MNIST / "manifest.json").read_bytes())
        _put(s3, "mnist/mnist.int8.onnx", model)
        # Same size, one byte changed: only the sha256 can tell.
        tampered = bytearray(model)
        tampered[len(model) // 2] ^= 0xFF
        _put(s3, "tampered/manifest.json", json.dumps(_manifest("tampered")).encode())
        _put(s3, "tampered/mnist.int8.onnx", bytes(tampered))
        _put(s3, "secret/manifest.json", json.dumps(_manifest("secret")).encode())
        _put(s3, "secret/mnist.int8.onnx", model)
        _put(s3, "missing/manifest.json", json.dumps(_manifest("missing")).encode())
        _put(s3, "../manifest.json", json.dumps(_manifest("climber")).encode())
        _put(s3, "../mnist.int8.onnx", model)
        leaky, leaky_manifest = _external_data_model()
        _put(s3, "leaky/manifest.json", json.dumps(leaky_manifest).encode())
        _put(s3, "leaky/leaky.onnx", leaky)

        iam = moto.client("iam")
        keys = {}
        policies = {
            # Everything under the prefix except one model's objects.
            "server": [
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"},
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}*"},
                {
                    "Effect": "Deny",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}secret/*",
                },
            ],
            # May read objects but not list the bucket.
            "reader": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
            ],
        }
        for user, statements in policies.items():
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user,
                PolicyName="models",
                PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
        moto.enforce_iam()
        yield moto, keys


def _env(moto: MotoServer, keys: dict[str, str]) -> dict[str, str]:
    return moto.env(keys["AccessKeyId"], keys["SecretAccessKey"])


@pytest.fixture(scope="module")
def served(store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """uvicorn serving s3://models/prod/ as the IAM user ``server``; (URL, the cache's parent)."""
    moto, keys = store
    root = tmp_path_factory.mktemp("s3cache")
    cache = root / "cache"
    cache.mkdir()
    # A file beside the model folders: what the leaky model's external data points at.
    (cache / "secret.bin").write_bytes(bytes(28 * 28 * 4))
    env = {
        **_env(moto, keys["server"]),
        "EDGE_MODEL_DIR": f"s3://{BUCKET}/{PREFIX}",
        "EDGE_MODEL_CACHE": str(cache),
    }
    with service_server(BUNDLED_MODELS, env=env) as server:
        yield server.url, root


@pytest.fixture(scope="module")
def health(served) -> dict:
    url, _ = served
    return httpx.get(f"{url}/health", timeout=10).json()


def test_model_uploaded_to_s3_serves_over_http(served, health) -> None:
    url, _ = served
    assert health["models"] == ["mnist"]
    info = httpx.get(f"{url}/models/mnist", timeout=10).json()
    assert info["sha256"] == json.loads((MNIST / "manifest.json").read_text())["sha256"]
    digits, labels = mnist_test_digits(20)
    right = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for digit, label in zip(digits, labels, strict=True):
            response = client.post(
                "/models/mnist/predict", files={"file": ("d.png", encode(digit), "image/png")}
            )
            assert response.status_code == 200, response.text
            right += response.json()["prediction"] == str(label)
    # The bundled model gets >= 98 % of the MNIST test set (its report.md); 20 digits may miss 1.
    assert right >= 19


def _reasons(health: dict) -> dict[str, str]:
    return {u["name"]: u["reason"] for u in health["unavailable"]}


def test_tampered_object_is_refused_by_its_sha256(health) -> None:
    assert "sha256" in _reasons(health)["tampered"]


def test_denied_read_and_missing_object_make_the_model_unavailable(health) -> None:
    reasons = _reasons(health)
    assert reasons["secret"] == "cannot read the model from the store: AccessDenied"
    assert reasons["missing"] == "cannot read the model from the store: NoSuchKey"
    assert health["status"] == "degraded"


def test_key_climbing_out_of_the_prefix_writes_nothing_outside_the_cache(served, health) -> None:
    _, root = served
    assert "unsafe name '..'" in _reasons(health)[".."]
    # The cache's parent holds the cache and nothing else; nothing of the climber anywhere.
    assert [p.name for p in root.iterdir()] == ["cache"]
    assert not list(root.rglob("*climber*"))
    listed = {"mnist", "tampered", "secret", "missing", "leaky"}
    assert {p.name for p in (root / "cache").iterdir()} <= listed | {"secret.bin"}
    # Only verified files were kept: a refused download leaves no file (nor a .partial).
    assert sorted(p.name for p in (root / "cache").rglob("*.onnx")) == ["leaky.onnx", "mnist.int8.onnx"]
    assert not list(root.rglob("*.partial"))


def test_external_data_outside_the_model_folder_is_refused(health) -> None:
    reason = _reasons(health)["leaky"]
    assert reason == "model file leaky.onnx refers to external data outside its folder", reason


def test_unlistable_store_is_one_unavailable_entry_not_a_crash(store, tmp_path, monkeypatch) -> None:
    moto, keys = store
    for name, value in _env(moto, keys["reader"]).items():
        monkeypatch.setenv(name, value)
    registry = load_registry(f"s3://{BUCKET}/{PREFIX}", 1, tmp_path)
    assert registry.ready == {}
    (entry,) = registry.unavailable.values()
    assert (entry.name, entry.reason) == (STORE_ENTRY, "cannot list the model store: AccessDenied")


def test_a_verified_cached_file_is_not_downloaded_again(store, tmp_path, monkeypatch) -> None:
    moto, keys = store
    for name, value in _env(moto, keys["server"]).items():
        monkeypatch.setenv(name, value)
    first = fetch_s3_models(f"s3://{BUCKET}/{PREFIX}", tmp_path)
    model = tmp_path / "mnist" / "mnist.int8.onnx"
    stamp = model.stat().st_mtime_ns
    second = fetch_s3_models(f"s3://{BUCKET}/{PREFIX}", tmp_path)
    assert first.manifests == second.manifests and model.stat().st_mtime_ns == stamp
    # A corrupted cached copy is fetched again, not served.
    model.write_bytes(b"corrupt")
    fetch_s3_models(f"s3://{BUCKET}/{PREFIX}", tmp_path)
    assert model.stat().st_size == json.loads((MNIST / "manifest.json").read_text())["size_bytes"]


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [("s3://b", "b", ""), ("s3://b/", "b", ""), ("s3://b/p", "b", "p/"), ("s3://b/p/q/", "b", "p/q/")],
)
def test_s3_location_parses_bucket_and_prefix(uri: str, bucket: str, prefix: str) -> None:
    assert S3Location.parse(uri) == S3Location(bucket, prefix)


@pytest.mark.parametrize("uri", ["s3://", "s3:///p", "/models", "https://b/p"])
def test_s3_location_refuses_what_is_not_a_bucket_uri(uri: str) -> None:
    with pytest.raises(ValueError):
        S3Location.parse(uri)


def test_sam_template_grants_s3_reads_only_for_a_model_bucket() -> None:
    from infra import validate

    translated = validate.translate_sam(validate.as_packaged(validate.load_sam_template()))
    (policy,) = translated["Resources"]["EdgeInferFunctionRole"]["Properties"]["Policies"]
    condition, granted, otherwise = policy["Fn::If"]
    assert condition == "HasModelBucket" and otherwise == {"Ref": "AWS::NoValue"}
    (statement,) = granted["PolicyDocument"]["Statement"]
    assert {"s3:GetObject", "s3:ListBucket"} <= set(statement["Action"])
    assert not any(a.startswith("s3:Put") or a.startswith("s3:Delete") for a in statement["Action"])
    assert translated["Conditions"]["HasModelBucket"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ModelBucket"}, ""]}]
    }


SNAPSTART_CHILD = r"""
import json, sys
from tests.harness.lambda_events import LambdaContext, http_api_v2_event, multipart

import service.lambda_handler as lh  # the init phase: the models come from S3 here
from awslambdaric import lambda_runtime_hooks_runner

lambda_runtime_hooks_runner.run_before_snapshot()
print(json.dumps({"phase": "snapshot", "ready": sorted(lh.app.state.registry.ready)}), flush=True)
sys.stdin.readline()  # the test stops the S3 server meanwhile: a restore has no store to ask
lambda_runtime_hooks_runner.run_after_restore()
content_type, body = multipart(open(sys.argv[1], "rb").read())
response = lh.handler(http_api_v2_event("/predict", body, content_type), LambdaContext())
result = {"phase": "restored", "status": response["statusCode"], "body": response["body"]}
print(json.dumps(result), flush=True)
"""


def test_with_snapstart_the_download_is_in_the_snapshot_not_after_restore(tmp_path: Path) -> None:
    """The Lambda handler fetches the models at init, before the snapshot hooks; a restored
    environment answers with the S3 server gone."""
    import subprocess
    import sys

    pytest.importorskip("awslambdaric.lambda_runtime_hooks_runner")
    from .support import PROJECT_ROOT

    digits, labels = mnist_test_digits(1)
    image = tmp_path / "digit.png"
    image.write_bytes(encode(digits[0]))
    with moto_server() as moto:
        s3 = moto.client()
        s3.create_bucket(Bucket=BUCKET)
        for name in ("manifest.json", "mnist.int8.onnx"):
            _put(s3, f"mnist/{name}", (MNIST / name).read_bytes())
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EDGE_"))},
            **moto.env("testing", "testing"),
            "AWS_LAMBDA_FUNCTION_NAME": "edge-infer",
            "EDGE_MODEL_DIR": f"s3://{BUCKET}/{PREFIX}",
            "EDGE_MODEL_CACHE": str(tmp_path / "cache"),
            "EDGE_LOG_LEVEL": "WARNING",
        }
        child = subprocess.Popen(
            [sys.executable, "-c", SNAPSTART_CHILD, str(image)],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            snapshot = _phase(child, "snapshot")
        except BaseException:
            child.kill()
            raise
    assert snapshot["ready"] == ["mnist"]
    try:
        out, err = child.communicate("restore\n", timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err[-3000:]
    restored = next(json.loads(line) for line in out.splitlines() if '"phase": "restored"' in line)
    assert restored["status"] == 200
    assert json.loads(restored["body"])["prediction"] == str(labels[0])


def _phase(child, name: str) -> dict:
    for line in child.stdout:
        if f'"phase": "{name}"' in line:
            return json.loads(line)
    raise AssertionError(f"child ended before {name}: {child.stderr.read()[-3000:]}")
