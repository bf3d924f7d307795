"""Open Inference Protocol (V2) over real HTTP, spoken by a real client: ``tritonclient.http``.

Every answer is compared with the native route's answer for the same image file, so the V2
path is proved to run the same preprocessing and model, not only to return well-formed JSON.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from service.images.decode import decode_image
from service.images.preprocessing import preprocess
from service.manifest import Manifest

from .support import BUNDLED_MODELS, SHARED_DATA, encode, mnist_test_digits, running_server

DIGITS, LABELS = mnist_test_digits(8)
# A batch of 8 real MNIST test digits, half PNG, half JPEG (as a phone or a scanner sends them).
FILES = [
    encode(Image.fromarray(d).resize((112, 112)), "PNG")
    if i % 2 == 0
    else encode(Image.fromarray(d).resize((112, 112)).convert("RGB"), "JPEG", quality=90)
    for i, d in enumerate(DIGITS)
]
MNIST_MANIFEST = Manifest.model_validate_json((BUNDLED_MODELS / "mnist" / "manifest.json").read_bytes())
API_KEY = "v2-test-key-3b1d"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server(EDGE_MAX_BATCH_IMAGES="16") as running:
        yield running.url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=server.removeprefix("http://"), network_timeout=60.0) as c:
        yield c


def native(server: str, data: bytes, k: int, model: str = "mnist") -> dict:
    response = httpx.post(f"{server}/models/{model}/predict", params={"top_k": k}, content=data, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def native_probabilities(server: str, data: bytes, model: str, classes: int) -> np.ndarray:
    """The full probability row the native route gives (top_k = every class), by class index."""
    row = np.zeros(classes)
    for entry in native(server, data, classes, model)["top_k"]:
        row[entry["class_index"]] = entry["probability"]
    return row


def image_input(files: list[bytes], binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("image_bytes", [len(files)], "BYTES")
    if binary:  # raw file bytes through the binary tensor data extension
        tensor.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=True)
    else:  # base64 strings in the JSON body
        encoded = np.array([base64.b64encode(f).decode() for f in files], dtype=np.object_)
        tensor.set_data_from_numpy(encoded, binary_data=False)
    return tensor


def parse_classes(strings: np.ndarray) -> list[list[tuple[float, int, str]]]:
    rows = []
    for row in strings:
        entries = []
        for item in row:
            value, index, label = (item.decode() if isinstance(item, bytes) else item).split(":", 2)
            entries.append((float(value), int(index), label))
        rows.append(entries)
    return rows


def test_server_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "edge-infer"
    assert {"binary_tensor_data", "classification"} <= set(metadata["extensions"])
    model = client.get_model_metadata("mnist")
    assert model["platform"] == "onnx_onnxv1" and model["versions"] == ["1.0.0"]
    assert {"name": "image_bytes", "datatype": "BYTES", "shape": [-1]} in model["inputs"]
    assert {"name": "image", "datatype": "FP32", "shape": [-1, 28, 28, 1]} in model["inputs"]
    assert client.is_model_ready("mnist") and client.is_model_ready("mnist", "1.0.0")
    assert not client.is_model_ready("mnist", "2.0.0")
    assert not client.is_model_ready("no-such-model")


@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-bytes", "base64-json"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_batch_of_8_top3_matches_the_native_route(
    server: str, client: triton.InferenceServerClient, binary_in: bool, binary_out: bool
) -> None:
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary_out, class_count=3)]
    result = client.infer("mnist", [image_input(FILES, binary_in)], outputs=outputs, request_id="batch-8")
    assert result.get_response()["id"] == "batch-8"
    top3 = parse_classes(result.as_numpy("probabilities"))
    assert len(top3) == 8
    for data, label, ranked in zip(FILES, LABELS, top3, strict=True):
        expected = native(server, data, 3)["top_k"]
        assert [(i, lab) for _, i, lab in ranked] == [(e["class_index"], e["label"]) for e in expected]
        np.testing.assert_allclose(
            [v for v, _, _ in ranked], [e["probability"] for e in expected], rtol=1e-6, atol=1e-7
        )
        assert ranked[0][1] == label


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_probabilities_tensor_matches_the_native_route(
    server: str, client: triton.InferenceServerClient, binary: bool
) -> None:
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary)]
    result = client.infer("mnist", [image_input(FILES[:4], binary=True)], outputs=outputs)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (4, 10) and probabilities.dtype == np.float32
    for data, row in zip(FILES[:4], probabilities, strict=True):
        np.testing.assert_allclose(row, native_probabilities(server, data, "mnist", 10), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_preprocessed_fp32_tensors_match_the_native_route(
    server: str, client: triton.InferenceServerClient, binary: bool
) -> None:
    # The client does the preprocessing itself (the service's own function on the same files).
    tensor = np.concatenate([preprocess(decode_image(f, 40_000_000), MNIST_MANIFEST) for f in FILES])
    entry = triton.InferInput("image", list(tensor.shape), "FP32")
    entry.set_data_from_numpy(tensor, binary_data=binary)
    result = client.infer(
        "mnist", [entry], outputs=[triton.InferRequestedOutput("probabilities", binary_data=binary)]
    )
    probabilities = result.as_numpy("probabilities")
    for data, row in zip(FILES, probabilities, strict=True):
        np.testing.assert_allclose(row, native_probabilities(server, data, "mnist", 10), rtol=1e-5, atol=1e-6)
    assert list(probabilities.argmax(axis=1)) == list(LABELS)


def test_extreme_fp32_values_are_a_400_not_a_500(client: triton.InferenceServerClient) -> None:
    entry = triton.InferInput("image", [1, 28, 28, 1], "FP32")
    entry.set_data_from_numpy(np.full((1, 28, 28, 1), 3e38, dtype=np.float32), binary_data=True)
    try:
        result = client.infer("mnist", [entry])
    except InferenceServerException as exc:
        assert exc.status() == "400" and "not finite" in str(exc)
    else:  # the model saturated instead of overflowing: then the answer must be finite
        assert np.isfinite(result.as_numpy("probabilities")).all()


def test_versioned_infer_and_unknown_version(client: triton.InferenceServerClient) -> None:
    outputs = [triton.InferRequestedOutput("probabilities", class_count=1)]
    result = client.infer("mnist", [image_input(FILES[:1], True)], model_version="1.0.0", outputs=outputs)
    assert parse_classes(result.as_numpy("probabilities"))[0][0][1] == LABELS[0]
    with pytest.raises(InferenceServerException, match="has no version '7'") as caught:
        client.infer("mnist", [image_input(FILES[:1], True)], model_version="7")
    assert caught.value.status() == "404"


@pytest.mark.parametrize(
    ("files", "status", "words"),
    [
        ([b"%PDF-1.7 not an image"], "415", r"image_bytes\[0\]: PDF is not a supported image format"),
        ([FILES[0], FILES[1][:100]], "400", r"image_bytes\[1\]: .*JPEG"),
        ([FILES[0]] * 17, "413", "17 images in one request; limit is 16"),
    ],
)
def test_bad_images_are_client_errors_with_the_reason(
    client: triton.InferenceServerClient, files: list[bytes], status: str, words: str
) -> None:
    with pytest.raises(InferenceServerException, match=words) as caught:
        client.infer("mnist", [image_input(files, binary=True)])
    assert caught.value.status() == status


def test_unknown_model_is_404(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="no model named 'nope'") as caught:
        client.infer("nope", [image_input(FILES[:1], True)])
    assert caught.value.status() == "404"


def test_errors_are_error_objects_and_binary_responses_carry_the_header_length(server: str) -> None:
    response = httpx.post(f"{server}/v2/models/mnist/infer", content=b'{"inputs": "x"}')
    assert response.status_code == 400
    assert response.json()["error"] == "inputs: Input should be a valid list"
    body = {
        "inputs": [
            {
                "name": "image_bytes",
                "shape": [1],
                "datatype": "BYTES",
                "data": [base64.b64encode(FILES[0]).decode()],
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    response = httpx.post(f"{server}/v2/models/mnist/infer", json=body)
    assert response.status_code == 200
    length = int(response.headers["inference-header-content-length"])
    assert len(response.content) == length + 10 * 4  # JSON header, then 10 little-endian floats
    assert response.headers["content-type"] == "application/octet-stream"


def test_metrics_count_the_v2_route_template(server: str, client: triton.InferenceServerClient) -> None:
    client.infer("mnist", [image_input(FILES[:1], True)])
    text = httpx.get(f"{server}/metrics").text
    assert 'route="/v2/models/{name}/infer"' in text


def test_readiness_is_503_while_a_model_found_is_not_serving(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED_MODELS / "mnist", tmp_path / "mnist")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"name": "broken"}')
    with running_server(tmp_path) as running:
        assert httpx.get(f"{running.url}/v2/health/live").json() == {"live": True}
        ready = httpx.get(f"{running.url}/v2/health/ready")
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        assert httpx.get(f"{running.url}/v2/models/mnist/ready").status_code == 200
        not_loaded = httpx.get(f"{running.url}/v2/models/broken/ready")
        assert not_loaded.status_code == 503 and "not available" in not_loaded.json()["error"]


def test_api_keys_cover_v2_except_the_probes() -> None:
    with running_server(EDGE_API_KEYS=API_KEY) as running:
        host = running.url.removeprefix("http://")
        assert httpx.get(f"{running.url}/v2/health/live").status_code == 200
        assert httpx.get(f"{running.url}/v2/health/ready").status_code == 200
        refused = httpx.get(f"{running.url}/v2/models/mnist")
        assert refused.status_code == 401 and "error" in refused.json()
        with triton.InferenceServerClient(url=host) as keyed:
            with pytest.raises(InferenceServerException) as caught:
                keyed.infer("mnist", [image_input(FILES[:1], True)])
            assert caught.value.status() == "401"
            result = keyed.infer("mnist", [image_input(FILES[:1], True)], headers={"X-API-Key": API_KEY})
            assert result.as_numpy("probabilities").argmax() == LABELS[0]


# --- a 224x224 model on real photos (the cats-vs-dogs seed model, built once per session) -------

PHOTOS = (
    sorted((SHARED_DATA / "cats_vs_dogs" / "cats").glob("*.jpg"))[:4]
    + sorted((SHARED_DATA / "cats_vs_dogs" / "dogs").glob("*.jpg"))[:4]
)


def test_real_photos_on_a_224_model_match_the_native_route(seed_models) -> None:
    with running_server(seed_models.served) as running:
        files = [p.read_bytes() for p in PHOTOS]
        with triton.InferenceServerClient(
            url=running.url.removeprefix("http://"), network_timeout=120.0
        ) as c:
            outputs = [
                triton.InferRequestedOutput("probabilities", binary_data=True, class_count=2),
            ]
            result = c.infer("cats_vs_dogs", [image_input(files, binary=True)], outputs=outputs)
        ranked = parse_classes(result.as_numpy("probabilities"))
        for data, row in zip(files, ranked, strict=True):
            expected = native(running.url, data, 2, "cats_vs_dogs")["top_k"]
            assert [lab for _, _, lab in row] == [e["label"] for e in expected]
            np.testing.assert_allclose(
                [v for v, _, _ in row], [e["probability"] for e in expected], rtol=1e-6, atol=1e-7
            )
        # A model that earns its keep: most of these real photos land in their own class.
        right = sum(
            row[0][2] == ("cat" if "cat." in p.name else "dog") for p, row in zip(PHOTOS, ranked, strict=True)
        )
        assert right >= 7


@pytest.mark.parametrize(
    "path",
    ["/v2/models/mnist/infer", "/v1/models/mnist:predict", "/models/mnist/predict/batch", "/predict"],
)
def test_admission_control_covers_the_protocol_routes(path: str) -> None:
    """One admission token: a request still sending its body holds it; the next gets a 503."""
    import socket

    with running_server(EDGE_MAX_PENDING_PREDICTIONS="1") as running:
        holder = socket.create_connection(("127.0.0.1", running.port))
        try:
            content_type = (
                "multipart/form-data; boundary=xyz" if path.endswith("/batch") else "application/json"
            )
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                "Content-Length: 1000\r\n\r\n--xyz\r\n"
            )
            holder.sendall(head.encode())  # admitted, then waits for the rest of its body
            deadline = 50
            while deadline:
                busy = httpx.post(f"{running.url}{path}", json={"inputs": []}, timeout=10)
                if busy.status_code == 503:
                    break
                deadline -= 1
            assert busy.status_code == 503, busy.text
            assert busy.headers["retry-after"] == "1" and "server busy" in busy.text
        finally:
            holder.close()
