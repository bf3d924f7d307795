"""The Mangum handler answers real API Gateway events (HTTP API 2.0 and REST API 1.0)."""

from __future__ import annotations

import json

import pytest

from tests.harness.lambda_events import LambdaContext, http_api_v2_event, multipart, rest_api_v1_event

from .support import encode, mnist_test_digits

EVENTS = {"http_api_v2": http_api_v2_event, "rest_api_v1": rest_api_v1_event}


@pytest.fixture
def handler(lambda_handler):
    return lambda_handler


@pytest.fixture(scope="module")
def digits():
    return mnist_test_digits(20)


@pytest.mark.parametrize("kind", EVENTS)
def test_multipart_upload_is_classified(handler, digits, kind):
    images, labels = digits
    correct = 0
    for image, label in zip(images, labels, strict=True):
        content_type, body = multipart(encode(image))
        response = handler(EVENTS[kind]("/predict", body, content_type, "top_k=2"), LambdaContext())
        assert response["statusCode"] == 200, response
        payload = json.loads(response["body"])
        assert payload["model"] == "mnist" and len(payload["top_k"]) == 2
        correct += payload["class_index"] == int(label)
    assert correct >= 19


@pytest.mark.parametrize("kind", EVENTS)
def test_metadata_and_errors_through_api_gateway(handler, kind):
    health = handler(EVENTS[kind]("/health", b"", "application/json", method="GET"), LambdaContext())
    assert health["statusCode"] == 200 and "mnist" in json.loads(health["body"])["models"]
    bad = handler(EVENTS[kind]("/predict", b"not an image", "application/octet-stream"), LambdaContext())
    assert bad["statusCode"] == 415
    assert "not a recognised image" in json.loads(bad["body"])["detail"]
    missing = handler(EVENTS[kind]("/models/nope/predict", b"x", "application/octet-stream"), LambdaContext())
    assert missing["statusCode"] == 404


def test_models_are_loaded_once_per_container(handler, digits):
    """The registry is built at import (Lambda init), not per invocation by the lifespan."""
    from service import lambda_handler

    registry = lambda_handler.app.state.registry
    session = registry.ready["mnist"].session
    content_type, body = multipart(encode(digits[0][0]))
    for _ in range(3):
        handler(http_api_v2_event("/predict", body, content_type), LambdaContext())
    assert lambda_handler.app.state.registry is registry
    assert registry.ready["mnist"].session is session
