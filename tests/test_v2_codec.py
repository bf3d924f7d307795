"""The Open Inference Protocol and TF-Serving codecs on their own, against real client encodings.

Requests are built by ``tritonclient.http`` (its ``InferInput``/``InferRequestedOutput`` and
``_get_inference_request``, which produce the exact body and header it sends), so the parser is
tested against what a real client emits, not only against hand-written JSON.
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from service.api.protocols import oip, tfserving
from service.api.protocols.oip import ProtocolError
from service.engine.pipeline import EncodedImages
from service.errors import PayloadTooLarge
from service.manifest import Manifest

from .support import BUNDLED_MODELS, encode, mnist_test_digits

MANIFEST = Manifest.model_validate_json((BUNDLED_MODELS / "mnist" / "manifest.json").read_bytes())
DIGITS, _ = mnist_test_digits(8)
PNGS = [encode(d) for d in DIGITS]


def triton_body(inputs, outputs=None, request_id="", binary_output=False) -> tuple[bytes, str | None]:
    """The body and Inference-Header-Content-Length tritonclient would send."""
    body, json_size = _get_inference_request(
        inputs=inputs,
        request_id=request_id,
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    if binary_output:
        document = json.loads(body[:json_size] if json_size else body)
        document.setdefault("parameters", {})["binary_data_output"] = True
        header = json.dumps(document).encode()
        return header + (body[json_size:] if json_size else b""), str(len(header)) if json_size else None
    return (body.encode() if isinstance(body, str) else body), (None if json_size is None else str(json_size))


def image_input(files: list[bytes], binary: bool, shape_2d: bool = False) -> triton.InferInput:
    shape = [len(files), 1] if shape_2d else [len(files)]
    tensor = triton.InferInput(oip.IMAGE_INPUT, shape, "BYTES")
    if binary:
        tensor.set_data_from_numpy(np.array(files, dtype=np.object_).reshape(shape), binary_data=True)
    else:
        encoded = [base64.b64encode(f).decode() for f in files]
        tensor.set_data_from_numpy(np.array(encoded, dtype=np.object_).reshape(shape), binary_data=False)
    return tensor


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "base64-json"])
@pytest.mark.parametrize("shape_2d", [False, True], ids=["[N]", "[N,1]"])
def test_image_bytes_from_tritonclient(binary: bool, shape_2d: bool) -> None:
    body, header = triton_body([image_input(PNGS, binary, shape_2d)], request_id="req-7")
    request = oip.parse_request(body, header, MANIFEST, max_images=32)
    assert request.id == "req-7"
    assert request.inputs.files == PNGS
    assert len(request.inputs) == 8


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_fp32_tensor_from_tritonclient(binary: bool) -> None:
    tensor = np.random.default_rng(1).random((3, 28, 28, 1), dtype=np.float32)
    entry = triton.InferInput("image", list(tensor.shape), "FP32")
    entry.set_data_from_numpy(tensor, binary_data=binary)
    body, header = triton_body([entry])
    request = oip.parse_request(body, header, MANIFEST, max_images=32)
    np.testing.assert_array_equal(request.inputs.array, tensor)


def test_requested_outputs_classification_and_binary() -> None:
    outputs = [
        triton.InferRequestedOutput(oip.PROBABILITIES, binary_data=True, class_count=3),
        triton.InferRequestedOutput(oip.PROBABILITIES, binary_data=False),
    ]
    body, header = triton_body([image_input(PNGS[:2], True)], outputs=outputs)
    request = oip.parse_request(body, header, MANIFEST, max_images=32)
    assert request.outputs == [
        oip.RequestedOutput(oip.PROBABILITIES, classification=3, binary=True),
        oip.RequestedOutput(oip.PROBABILITIES, classification=None, binary=False),
    ]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_response_is_read_back_by_tritonclient(binary: bool) -> None:
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]])
    labels = ["a", "b", "c"]
    inputs = EncodedImages([b"", b""])

    def read(outputs: list[oip.RequestedOutput]) -> triton.InferResult:
        request = oip.InferenceRequest(id="x", inputs=inputs, outputs=outputs)
        encoded = oip.encode_response("m", "1", request, probabilities, labels)
        length = encoded.headers.get(oip.HEADER_LENGTH)
        assert (length is not None) == binary
        return triton.InferResult.from_response_body(
            encoded.body, header_length=int(length) if length else None
        )

    top = read([oip.RequestedOutput(oip.PROBABILITIES, classification=2, binary=binary)])
    assert top.get_response()["id"] == "x"
    strings = top.as_numpy(oip.PROBABILITIES)
    assert strings.shape == (2, 2)
    as_text = [[s.decode() if isinstance(s, bytes) else s for s in row] for row in strings]
    assert as_text == [["0.7:1:b", "0.2:2:c"], ["0.5:0:a", "0.25:1:b"]]  # tie: lower index first
    values = read([oip.RequestedOutput(oip.PROBABILITIES, binary=binary)]).as_numpy(oip.PROBABILITIES)
    np.testing.assert_allclose(values, probabilities, rtol=1e-6)
    assert values.dtype == np.float32


def test_json_response_shapes_and_values() -> None:
    probabilities = np.array([[0.25, 0.75]])
    request = oip.InferenceRequest(id=None, inputs=EncodedImages([b""]))
    encoded = oip.encode_response("m", "1", request, probabilities, ["cat", "dog"])
    assert encoded.media_type == "application/json" and not encoded.headers
    document = json.loads(encoded.body)
    assert "id" not in document
    assert document["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]}
    ]


def test_model_metadata_advertises_both_inputs_with_variable_batch() -> None:
    metadata = oip.model_metadata(MANIFEST)
    assert metadata["platform"] == "onnx_onnxv1"
    assert metadata["inputs"] == [
        {"name": "image_bytes", "datatype": "BYTES", "shape": [-1]},
        {"name": "image", "datatype": "FP32", "shape": [-1, 28, 28, 1]},
    ]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]


def _json(document) -> bytes:
    return json.dumps(document).encode()


PNG_B64 = base64.b64encode(PNGS[0]).decode()
GOOD_INPUT = {"name": "image_bytes", "shape": [1], "datatype": "BYTES", "data": [PNG_B64]}


@pytest.mark.parametrize(
    ("body", "header", "words"),
    [
        (b"", None, "empty body"),
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [NaN]}]}', None, "NaN"),
        (_json({"inputs": []}), None, "inputs: List should have at least 1 item"),
        (_json({"inputs": [GOOD_INPUT, GOOD_INPUT]}), None, "exactly one input"),
        (_json({"id": 5, "inputs": [GOOD_INPUT]}), None, "id: Input should be a valid string"),
        (_json({"inputs": [{**GOOD_INPUT, "name": "pixels"}]}), None, "unknown input 'pixels'"),
        (_json({"inputs": [{**GOOD_INPUT, "datatype": "UINT8"}]}), None, "must have datatype BYTES"),
        (_json({"inputs": [{**GOOD_INPUT, "shape": [1, 2]}]}), None, r"shape \[N\] or \[N, 1\]"),
        (
            _json({"inputs": [{**GOOD_INPUT, "shape": [-1]}]}),
            None,
            r"inputs\.0\.shape\.0: .*greater than or equal to 0",
        ),
        (_json({"inputs": [{**GOOD_INPUT, "shape": [2]}]}), None, "says 2 images, data has 1"),
        (_json({"inputs": [{**GOOD_INPUT, "shape": [0], "data": []}]}), None, "batch is empty"),
        (_json({"inputs": [{**GOOD_INPUT, "data": ["%%%"]}]}), None, "not valid base64"),
        (_json({"inputs": [{**GOOD_INPUT, "data": [3]}]}), None, "must be a base64 string"),
        (_json({"inputs": [{k: v for k, v in GOOD_INPUT.items() if k != "data"}]}), None, "has no data"),
        (
            _json({"inputs": [{"name": "image", "shape": [1, 28, 28], "datatype": "FP32", "data": [0]}]}),
            None,
            r"must have shape \[-1, 28, 28, 1\]",
        ),
        (
            _json({"inputs": [{"name": "image", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": [0]}]}),
            None,
            "needs 784 values, data has 1",
        ),
        (
            _json(
                {
                    "inputs": [
                        {"name": "image", "shape": [1, 28, 28, 1], "datatype": "FP32", "data": ["a"] * 784}
                    ]
                }
            ),
            None,
            "must be numbers",
        ),
        (_json({"inputs": [GOOD_INPUT], "outputs": [{"name": "logits"}]}), None, "unknown output 'logits'"),
        (
            _json(
                {
                    "inputs": [GOOD_INPUT],
                    "outputs": [{"name": "probabilities", "parameters": {"classification": 0}}],
                }
            ),
            None,
            r"outputs\.0\.parameters\.classification: .*greater than or equal to 1",
        ),
        (_json({"inputs": [GOOD_INPUT]}), "abc", "must be an integer"),
        (_json({"inputs": [GOOD_INPUT]}), "99999", "body has"),
    ],
)
def test_malformed_requests_are_400_with_the_reason(body: bytes, header: str | None, words: str) -> None:
    with pytest.raises(ProtocolError, match=words) as caught:
        oip.parse_request(body, header, MANIFEST, max_images=32)
    assert caught.value.status_code == 400


def _binary_request(declared: int, payload: bytes) -> tuple[bytes, str]:
    header = _json(
        {
            "inputs": [
                {
                    "name": "image_bytes",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": declared},
                }
            ]
        }
    )
    return header + payload, str(len(header))


@pytest.mark.parametrize(
    ("declared", "payload", "words"),
    [
        (10, b"\x05\x00", "only 2 bytes"),
        (2, b"\x05\x00", "inside a 4-byte length prefix"),
        (6, struct.pack("<I", 99) + b"ab", "claims 99 bytes, 2 remain"),
        (6, struct.pack("<I", 2) + b"ab" + b"extra", "not claimed"),
    ],
)
def test_binary_sizes_that_do_not_add_up(declared: int, payload: bytes, words: str) -> None:
    body, header = _binary_request(declared, payload)
    with pytest.raises(ProtocolError, match=words):
        oip.parse_request(body, header, MANIFEST, max_images=32)


def test_non_finite_binary_fp32_is_refused() -> None:
    tensor = np.zeros((1, 28, 28, 1), dtype=np.float32)
    tensor[0, 3, 3, 0] = np.inf
    entry = triton.InferInput("image", list(tensor.shape), "FP32")
    entry.set_data_from_numpy(tensor, binary_data=True)
    body, header = triton_body([entry])
    with pytest.raises(ProtocolError, match="finite"):
        oip.parse_request(body, header, MANIFEST, max_images=32)


def test_too_many_images_is_413() -> None:
    body, header = triton_body([image_input(PNGS, binary=True)])
    with pytest.raises(PayloadTooLarge, match="8 images in one request; limit is 4"):
        oip.parse_request(body, header, MANIFEST, max_images=4)


def test_deeply_nested_json_data_is_a_400() -> None:
    body = (
        b'{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}]}"
    )
    with pytest.raises(ProtocolError):
        oip.parse_request(body, None, MANIFEST, max_images=32)


# --- TF-Serving / KServe V1 ---------------------------------------------------------------------


def test_v1_instances_in_every_accepted_form() -> None:
    b64 = [base64.b64encode(p).decode() for p in PNGS[:3]]
    forms = [
        {"instances": [{"image_bytes": {"b64": b}, "key": str(i)} for i, b in enumerate(b64)]},
        {"instances": [{"b64": b} for b in b64]},
        {"inputs": {"image_bytes": [{"b64": b} for b in b64]}},
        {"inputs": [{"b64": b} for b in b64]},
    ]
    for form in forms:
        files, top_k = tfserving.parse_instances(_json(form), max_images=32)
        assert files == PNGS[:3]
        assert top_k is None
    _, top_k = tfserving.parse_instances(_json({**forms[0], "parameters": {"top_k": 2}}), max_images=32)
    assert top_k == 2


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"signature_name": "x"}, '"instances"'),
        ({"instances": []}, "non-empty"),
        ({"instances": [{"image_bytes": "abc"}]}, "instance 0: expected"),
        ({"instances": [[1, 2, 3]]}, "instance 0: expected"),
        ({"instances": [{"b64": "***"}]}, "not valid base64"),
        ({"instances": [{"b64": PNG_B64}], "parameters": {"top_k": 0}}, "top_k"),
    ],
)
def test_v1_malformed(document, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        tfserving.parse_instances(_json(document), max_images=32)


def test_v1_too_many_instances_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="limit is 2"):
        tfserving.parse_instances(_json({"instances": [{"b64": PNG_B64}] * 3}), max_images=2)
