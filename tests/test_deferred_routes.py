"""The Lambda app's protocol routes are built on first need, and the app is then the eager one.

``create_app(defer_protocols=True)`` (what ``service.lambda_handler`` builds) leaves the batch,
KServe V1 and Open Inference Protocol modules unimported until a request that no other route
answers, or the OpenAPI schema, needs them. These checks run the real handler in a fresh
interpreter with real API Gateway events, and compare the deferred app with the eager one.
"""

from __future__ import annotations

import json

import pytest
from fastapi.routing import iter_route_contexts

from service.app import create_app
from service.config import Settings

from .support import BUNDLED_MODELS, lambda_child

DEFERRED_MODULES = ("service.api.batch", "service.api.v1", "service.api.v2", "service.api.protocols")

CHILD = r"""
import json, sys
from tests.harness.lambda_events import LambdaContext, http_api_v2_event

import service.lambda_handler as lh  # the init phase

deferred = json.loads(sys.argv[1])
out = {"imported_at_init": sorted(m for m in deferred if m in sys.modules)}
answers = []
for method, path in [("GET", "/health"), ("GET", "/nowhere"), ("POST", "/v2/health/live"),
                     ("GET", "/v2/health/live"), ("GET", "/v1/models/mnist"), ("GET", "/v2/models/mnist")]:
    response = lh.handler(http_api_v2_event(path, b"", "application/json", method=method), LambdaContext())
    answers.append([method, path, response["statusCode"], json.loads(response["body"])])
out["answers"] = answers
out["imported_after"] = sorted(m for m in deferred if m in sys.modules)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lambda_run() -> dict:
    return lambda_child(CHILD, json.dumps(DEFERRED_MODULES), model_dir=BUNDLED_MODELS)


def test_lambda_init_leaves_the_protocol_modules_unimported(lambda_run: dict) -> None:
    assert lambda_run["imported_at_init"] == []
    assert lambda_run["imported_after"] == sorted(DEFERRED_MODULES)


def test_first_unmatched_request_answers_as_the_eager_app_would(lambda_run: dict) -> None:
    answers = {(method, path): (status, body) for method, path, status, body in lambda_run["answers"]}
    assert answers[("GET", "/health")][0] == 200
    assert answers[("GET", "/nowhere")] == (404, {"detail": "Not Found"})
    assert answers[("POST", "/v2/health/live")][0] == 405
    assert answers[("GET", "/v2/health/live")] == (200, {"live": True})
    assert answers[("GET", "/v1/models/mnist")] == (200, {"name": "mnist", "ready": True})
    assert answers[("GET", "/v2/models/mnist")][1]["name"] == "mnist"


def _routes(app) -> list[tuple[str, list[str]]]:
    return [(r.path, sorted(getattr(r, "methods", None) or [])) for r in iter_route_contexts(app.routes)]


@pytest.mark.parametrize("keys", [(), ("a-key",)], ids=["no-keys", "keys"])
def test_deferred_app_has_the_eager_schema_and_route_order(keys: tuple[str, ...]) -> None:
    settings = Settings(model_dir=BUNDLED_MODELS, api_keys=keys, log_level="WARNING")
    eager = create_app(settings)
    deferred = create_app(settings, registry=eager.state.registry, defer_protocols=True)
    eager_schema = eager.openapi()
    deferred_schema = deferred.openapi()  # includes the deferred routers first
    assert deferred_schema == eager_schema
    assert list(deferred_schema["paths"]) == list(eager_schema["paths"])
    assert _routes(deferred) == _routes(eager)
