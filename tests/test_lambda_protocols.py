"""The Lambda handler answers a V2 infer and a batch upload in real API Gateway events.

Both payload versions (HTTP API 2.0, REST API 1.0) carry the body base64-encoded, as API
Gateway does for binary media; the V2 request uses Triton's binary tensor data extension, whose
``Inference-Header-Content-Length`` header must survive the trip through Mangum.
"""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from tests.harness.lambda_events import LambdaContext, http_api_v2_event, rest_api_v1_event

from .support import encode, mnist_test_digits

EVENTS = {"http_api_v2": http_api_v2_event, "rest_api_v1": rest_api_v1_event}
DIGITS, LABELS = mnist_test_digits(6)
PNGS = [encode(d) for d in DIGITS]


def _with_header(event: dict, name: str, value: str) -> dict:
    event["headers"][name] = value
    if "multiValueHeaders" in event:
        event["multiValueHeaders"][name] = [value]
    return event


def _body(response: dict) -> bytes:
    raw = response["body"]
    return base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()


@pytest.mark.parametrize("kind", EVENTS)
def test_v2_binary_infer_through_api_gateway(lambda_handler, kind: str) -> None:
    tensor = triton.InferInput("image_bytes", [len(PNGS)], "BYTES")
    tensor.set_data_from_numpy(np.array(PNGS, dtype=np.object_), binary_data=True)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=True, class_count=1)]
    body, json_size = _get_inference_request(
        inputs=[tensor], request_id="lambda-1", outputs=outputs, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, custom_parameters=None,
    )  # fmt: skip
    event = EVENTS[kind]("/v2/models/mnist/infer", body, "application/octet-stream")
    response = lambda_handler(
        _with_header(event, "Inference-Header-Content-Length", str(json_size)), LambdaContext()
    )
    assert response["statusCode"] == 200, response
    headers = {k.lower(): v for k, v in response["headers"].items()}
    result = triton.InferResult.from_response_body(
        _body(response), header_length=int(headers["inference-header-content-length"])
    )
    assert result.get_response()["id"] == "lambda-1"
    top1 = [int(row[0].decode().split(":")[1]) for row in result.as_numpy("probabilities")]
    assert top1 == [int(label) for label in LABELS]


@pytest.mark.parametrize("kind", EVENTS)
def test_batch_upload_through_api_gateway(lambda_handler, kind: str) -> None:
    files = [("files", (f"d{i}.png", png, "image/png")) for i, png in enumerate(PNGS[:3])]
    files.insert(1, ("files", ("notes.txt", b"not a photo", "text/plain")))
    request = httpx.Request("POST", "https://example.invalid/", files=files)
    event = EVENTS[kind]("/models/mnist/predict/batch", request.read(), request.headers["content-type"])
    response = lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 200, response
    predictions = json.loads(_body(response))["predictions"]
    assert [p["filename"] for p in predictions] == ["d0.png", "notes.txt", "d1.png", "d2.png"]
    assert predictions[1]["error"]["status"] == 415
    assert [p["class_index"] for p in predictions if "error" not in p] == [int(x) for x in LABELS[:3]]


@pytest.mark.parametrize("kind", EVENTS)
def test_v2_error_through_api_gateway_is_an_error_object(lambda_handler, kind: str) -> None:
    event = EVENTS[kind]("/v2/models/mnist/infer", b'{"inputs": []}', "application/json")
    response = lambda_handler(event, LambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(_body(response))["error"].startswith("inputs: List should have at least 1 item")
