"""Schemathesis against the service's own OpenAPI schema, over HTTP to a real uvicorn server.

Every operation in ``/openapi.json`` gets a bounded number of generated requests: valid and
invalid parameters, random bodies for every declared content type, and real images (any
size, mode and format, drawn by hypothesis) for ``image/*``. Each response must be no server
error and must conform to the schema: documented status code, content type, headers and body.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = 80  # per operation (5 operations, ~420 requests, ~15 s)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES_RUN: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@st.composite
def encoded_images(draw: st.DrawFn) -> bytes:
    """A real image file: 1-64 px per side, any common mode, any accepted format."""
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    mode, fmt = draw(
        st.sampled_from(
            [
                ("L", "PNG"),
                ("RGB", "JPEG"),
                ("RGBA", "PNG"),
                ("P", "GIF"),
                ("RGB", "WEBP"),
                ("L", "BMP"),
                ("I;16", "PNG"),
                ("CMYK", "TIFF"),
                ("1", "PNG"),
                ("LA", "PNG"),
            ]
        )
    )
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image, dtype=np.uint16) * 257)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    # Sometimes damage it: truncated files must be 400s, never 500s.
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(data) - 1))))
    return data if cut is None else data[:cut]


schemathesis.openapi.media_type("image/*", st.one_of(encoded_images(), st.binary(max_size=256)))


def _openapi_document() -> dict:
    """The OpenAPI document the app publishes; models do not change it, so none are loaded.

    Built in-process at collection time because ``schemathesis.pytest.from_fixture`` fails on
    pytest 9 (``Function`` has no ``_nodeid``); ``test_served_schema_is_the_one_fuzzed`` checks
    that the running server serves this same document.
    """
    from service.app import create_app
    from service.config import Settings
    from service.engine.registry import ModelRegistry

    return create_app(Settings(), ModelRegistry()).openapi()


OPENAPI = _openapi_document()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_served_schema_is_the_one_fuzzed(http) -> None:
    assert http.get("/openapi.json").json() == OPENAPI


@pytest.fixture(scope="module", autouse=True)
def report_examples() -> None:
    yield
    total = sum(EXAMPLES_RUN.values())
    print(f"\nschemathesis: {total} generated requests: {dict(EXAMPLES_RUN)}")
    print(f"schemathesis: responses by status: {dict(sorted(STATUSES.items()))}")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every CI run; raise MAX_EXAMPLES to explore more
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case, server_url: str) -> None:
    response = case.call_and_validate(base_url=server_url, checks=CHECKS, timeout=30)
    EXAMPLES_RUN[f"{case.method} {case.path}"] += 1
    STATUSES[response.status_code] += 1
    assert response.status_code < 500
    if response.status_code >= 400:
        assert "detail" in response.json()
    assert response.headers.get("x-request-id")
