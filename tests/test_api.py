"""Metadata endpoints and the OpenAPI / Swagger documentation, over real HTTP."""

from __future__ import annotations

from service.manifest import Manifest

from .support import BUNDLED_MODELS


def test_health_lists_the_bundled_model(http):
    response = http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert "mnist" in body["models"]
    assert body["unavailable"] == []


def test_models_lists_default_and_metadata(http):
    body = http.get("/models").json()
    assert body["default_model"] == "mnist"
    mnist = next(m for m in body["models"] if m["name"] == "mnist")
    assert mnist["num_classes"] == 10 and mnist["for_real_predictions"] is True


def test_model_metadata_comes_from_the_manifest(http):
    manifest = Manifest.model_validate_json((BUNDLED_MODELS / "mnist" / "manifest.json").read_text())
    body = http.get("/models/mnist").json()
    assert body["labels"] == [str(d) for d in range(10)]
    assert body["input"] == {
        "name": "image",
        "shape": [None, 28, 28, 1],
        "dtype": "float32",
        "layout": "NHWC",
    }
    assert body["preprocessing"]["kind"] == "mnist_digit"
    assert body["sha256"] == manifest.sha256
    assert body["quantization"]["format"] == "QDQ"
    assert body["metrics"]["accuracy_onnx_int8"] >= 0.99


def test_unknown_model_is_404_naming_what_exists(http):
    response = http.get("/models/resnet9000")
    assert response.status_code == 404
    assert "resnet9000" in response.json()["detail"] and "mnist" in response.json()["detail"]


def test_swagger_ui_and_schema_document_every_route(http):
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text.lower()
    schema = http.get("/openapi.json").json()
    for path in ("/health", "/models", "/models/{name}", "/models/{name}/predict", "/predict"):
        assert path in schema["paths"], path
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/octet-stream"} <= set(body)
    assert "413" in schema["paths"]["/predict"]["post"]["responses"]


def test_schema_states_the_configured_top_k_bounds_and_default_model(http):
    schema = http.get("/openapi.json").json()
    for path in ("/predict", "/models/{name}/predict"):
        parameters = {p["name"]: p for p in schema["paths"][path]["post"]["parameters"]}
        top_k = parameters["top_k"]["schema"]
        assert (top_k["minimum"], top_k["maximum"], top_k["default"]) == (1, 1000, 3), path
    name = {p["name"]: p for p in schema["paths"]["/models/{name}/predict"]["post"]["parameters"]}["name"]
    assert name["schema"]["examples"] == ["mnist"]
