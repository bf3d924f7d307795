"""Faults: broken model files and manifests, and shutdown with requests in flight.

Copies of the committed digit model are damaged on disk in every way a deployment can damage
them; a real uvicorn server then has to keep serving the intact copy, refuse the rest with the
reason in ``/health``, and never load a file it could not verify.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from . import support
from .support import encode, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(4)


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _write_manifest(directory: Path, manifest: dict) -> None:
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _model_file(directory: Path) -> Path:
    return directory / _manifest(directory)["file"]


def _delete_file(d: Path) -> None:
    _model_file(d).unlink()


def _truncate(d: Path) -> None:
    path = _model_file(d)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _tamper(d: Path) -> None:
    # Same size, one byte different in the middle (inside the weights): only sha256 catches it.
    path = _model_file(d)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _not_json(d: Path) -> None:
    (d / "manifest.json").write_text('{"name": "mnist-not-json", "version": ')


def _missing_field(d: Path) -> None:
    manifest = _manifest(d)
    del manifest["sha256"]
    _write_manifest(d, manifest)


def _path_escape(d: Path) -> None:
    manifest = _manifest(d)
    manifest["file"] = "../mnist/" + manifest["file"]
    _write_manifest(d, manifest)


def _not_onnx(d: Path) -> None:
    # A file that passes the size and sha256 checks (the manifest was rewritten to match) but
    # is not an ONNX model: ONNX Runtime must refuse it and the service must report it.
    path = _model_file(d)
    path.write_bytes(b"this is not an onnx model" * 100)
    from service.manifest import sha256_of

    manifest = _manifest(d)
    manifest.update(sha256=sha256_of(path), size_bytes=path.stat().st_size)
    _write_manifest(d, manifest)


def _wrong_input_name(d: Path) -> None:
    manifest = _manifest(d)
    manifest["input"]["name"] = "pixels"
    _write_manifest(d, manifest)


def _manifest_is_a_directory(d: Path) -> None:
    # An I/O error whose message would carry the absolute path (IsADirectoryError: '/srv/...').
    (d / "manifest.json").unlink()
    (d / "manifest.json").mkdir()


# directory name -> (damage, fragment of the reason /health must give)
FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "mnist-missing": (_delete_file, "is missing"),
    "mnist-truncated": (_truncate, "wrong size (truncated or replaced)"),
    "mnist-tampered": (_tamper, "fails its sha256 check"),
    "mnist-not-json": (_not_json, "malformed manifest"),
    "mnist-no-sha256": (_missing_field, "malformed manifest: 1 error(s); sha256: Field required"),
    "mnist-path-escape": (_path_escape, "file must be a bare file name"),
    "mnist-not-onnx": (_not_onnx, "protobuf parsing failed"),
    "mnist-wrong-input": (_wrong_input_name, "input.name 'pixels' but the graph's inputs are ['image']"),
    "mnist-manifest-dir": (_manifest_is_a_directory, "IsADirectoryError: Is a directory"),
}


@pytest.fixture(scope="module")
def damaged_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    source = support.BUNDLED_MODELS / "mnist"
    shutil.copytree(source, root / "mnist")
    for name, (damage, _) in FAULTS.items():
        copy = root / name
        shutil.copytree(source, copy)
        manifest = _manifest(copy)
        manifest["name"] = name  # distinct names: a duplicate is refused for its own reason
        _write_manifest(copy, manifest)
        damage(copy)
    # A second intact copy under the same name: refused as a duplicate, the first one serves.
    shutil.copytree(source, root / "mnist-zz-duplicate")
    return root


@pytest.fixture(scope="module")
def server(damaged_models: Path) -> Iterator[support.RunningServer]:
    with running_server(damaged_models) as running:
        yield running


def test_health_reports_each_damaged_model_with_its_reason(
    server: support.RunningServer, damaged_models: Path
) -> None:
    health = httpx.get(f"{server.url}/health").json()
    assert health["status"] == "degraded"
    assert health["models"] == ["mnist"]
    reasons = {entry["name"]: entry["reason"] for entry in health["unavailable"]}
    assert set(reasons) == {*FAULTS, "mnist-zz-duplicate"}
    assert reasons["mnist-zz-duplicate"] == "duplicate model name 'mnist' (also in mnist)"
    for name, (_, fragment) in FAULTS.items():
        assert fragment in reasons[name], (name, reasons[name])
        # Operators get the reason; nobody gets the server's directory layout.
        assert str(damaged_models) not in reasons[name]


def test_the_intact_model_keeps_serving(server: support.RunningServer) -> None:
    for digit, label in zip(DIGITS, LABELS, strict=True):
        response = httpx.post(f"{server.url}/models/mnist/predict", content=encode(digit))
        assert response.status_code == 200
        assert response.json()["prediction"] == str(label)
    listed = httpx.get(f"{server.url}/models").json()
    assert [m["name"] for m in listed["models"]] == ["mnist"]


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_a_damaged_model_is_refused_with_503(server: support.RunningServer, name: str) -> None:
    response = httpx.post(f"{server.url}/models/{name}/predict", content=encode(DIGITS[0]))
    assert response.status_code == 503
    assert response.json()["detail"].startswith(f"model {name!r} is not available: ")
    assert FAULTS[name][1] in response.json()["detail"]


def test_metrics_mark_damaged_models_not_ready(server: support.RunningServer) -> None:
    text = httpx.get(f"{server.url}/metrics").text
    assert 'edge_model_ready{model="mnist"} 1.0' in text
    for name in FAULTS:
        assert f'edge_model_ready{{model="{name}"}} 0.0' in text


def test_unavailable_models_are_logged_with_the_reason(server: support.RunningServer) -> None:
    records = [json.loads(line) for line in server.log_lines() if line.startswith("{")]
    unavailable = {r["model"]: r["reason"] for r in records if r["message"] == "model unavailable"}
    assert set(unavailable) == set(FAULTS)


def test_empty_model_directory_serves_nothing_but_answers(tmp_path: Path) -> None:
    with running_server(tmp_path) as running:
        health = httpx.get(f"{running.url}/health").json()
        assert health["status"] == "degraded" and health["models"] == []
        # Nothing was found; the only problem is that the default model is not served.
        assert [u["name"] for u in health["unavailable"]] == ["mnist"]
        response = httpx.post(f"{running.url}/predict", content=encode(DIGITS[0]))
        assert response.status_code == 404
        assert "models being served: none" in response.json()["detail"]


# --- graceful shutdown ---------------------------------------------------------------------


def _start_upload(url: str, body: bytes, sent: int, request_id: str = "") -> socket.socket:
    """Open a connection and send the headers and the first ``sent`` body bytes."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    extra = f"X-Request-ID: {request_id}\r\n" if request_id else ""
    head = (
        f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[:sent])
    return sock


def _finish(sock: socket.socket, rest: bytes) -> tuple[int, dict]:
    sock.sendall(rest)
    with sock, sock.makefile("rb") as stream:
        status = int(stream.readline().split()[1])
        length = 0
        while (line := stream.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, json.loads(stream.read(length))


def test_graceful_shutdown_finishes_in_flight_requests() -> None:
    bodies = [encode(digit) for digit in DIGITS]
    with running_server() as running:
        port = urlsplit(running.url).port
        # Four uploads are half sent when SIGTERM arrives: they are in flight, not queued.
        sockets = [_start_upload(running.url, body, len(body) // 2) for body in bodies]
        time.sleep(0.5)
        running.process.terminate()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the listening socket closes first
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.05)
            except OSError:
                break
        else:
            pytest.fail("server still accepts new connections 10 s after SIGTERM")
        assert running.process.poll() is None, "exited with requests in flight"
        answers = [_finish(sock, body[len(body) // 2 :]) for sock, body in zip(sockets, bodies, strict=True)]
        # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
        assert running.process.wait(timeout=15) in (0, -signal.SIGTERM)
    for (status, payload), label in zip(answers, LABELS, strict=True):
        assert status == 200
        assert payload["prediction"] == str(label)


def test_client_vanishing_mid_upload_is_logged_as_499_not_as_a_server_error() -> None:
    body = encode(DIGITS[0])
    with running_server() as running:
        _start_upload(running.url, body, len(body) // 2, request_id="gone-1").close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            records = [json.loads(line) for line in running.log_lines() if line.startswith("{")]
            gone = [r for r in records if r.get("request_id") == "gone-1"]
            if gone:
                break
            time.sleep(0.05)
        assert [r["status"] for r in gone] == [499]
        assert gone[0]["level"] == "INFO"
        assert not [r for r in records if r["level"] == "ERROR"]
        assert httpx.post(f"{running.url}/predict", content=body).json()["prediction"] == str(LABELS[0])


def test_a_flood_beyond_the_admission_limit_gets_fast_503s_with_retry_after() -> None:
    bodies = [encode(digit) for digit in DIGITS[:2]]
    with running_server(EDGE_MAX_PENDING_PREDICTIONS="2") as running:
        held = [_start_upload(running.url, body, len(body) // 2) for body in bodies]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # both uploads admitted and waiting for their bodies
            metrics = httpx.get(f"{running.url}/metrics").text
            if "edge_http_requests_in_progress 3.0" in metrics:  # 2 held + this scrape
                break
            time.sleep(0.05)
        refused = httpx.post(f"{running.url}/predict", content=bodies[0])
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {"detail": "server busy: 2 predictions in progress; retry shortly"}
        assert httpx.get(f"{running.url}/health").status_code == 200  # probes are not refused
        answers = [_finish(sock, body[len(body) // 2 :]) for sock, body in zip(held, bodies, strict=True)]
        assert [status for status, _ in answers] == [200, 200]
        after = httpx.post(f"{running.url}/predict", content=bodies[1])
        assert after.status_code == 200 and after.json()["prediction"] == str(LABELS[1])
