"""Optional API-key authentication for container deployments.

Keys come from the environment (``EDGE_API_KEYS``, comma-separated, so several keys can be
valid during a rotation) and are sent by clients in one header (``EDGE_API_KEY_HEADER``,
default ``X-API-Key``). On Lambda leave the keys unset and authenticate in API Gateway (IAM,
JWT/Cognito authorizers, or REST API usage-plan keys) before the function is invoked.

The comparison is constant-time: both sides are hashed to 32-byte SHA-256 digests (so even the
key length does not leak through timing) and compared with ``hmac.compare_digest`` against
every configured key, without stopping at the first match.
"""

# No `from __future__ import annotations`: FastAPI must resolve the closure-local `scheme`
# in the dependency's signature.
import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from service.errors import Unauthorized

# Routes that answer without an API key even when EDGE_API_KEYS is set, each for a reason:
# load balancers, Kubernetes probes and scrapers (health, the Open Inference Protocol's
# live/ready probes, metrics); the page and its files, which ask the person
# for a key before calling the API; the docs and schema, which describe the API without using
# it (EDGE_DOCS_ENABLED=false removes them). Every other route needs a key;
# tests/test_route_doors.py walks the app's routes and fails on any difference from this list.
OPEN_ROUTES: frozenset[str] = frozenset(
    {
        "/health",
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",
        "/",
        "/static",
        "/docs",
        "/docs/assets/{name}",
        "/openapi.json",
    }
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def key_matches(candidate: str, digests: tuple[bytes, ...]) -> bool:
    """True when ``candidate`` equals one of the keys whose SHA-256 ``digests`` are given."""
    given = _digest(candidate)
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(given, digest)
    return matched


def api_key_dependencies(keys: tuple[SecretStr, ...], header: str) -> list:
    """FastAPI dependencies enforcing the keys; ``[]`` (no authentication) when none are set.

    The dependency raises ``Unauthorized`` (401) when the header is missing or matches no key.
    It also declares the ``apiKey`` security scheme in the OpenAPI document.
    """
    if not keys:
        return []
    digests = tuple(_digest(k.get_secret_value()) for k in keys)
    scheme = APIKeyHeader(name=header, auto_error=False, description="One of the keys set in EDGE_API_KEYS.")

    async def require_api_key(given: Annotated[str | None, Security(scheme)]) -> None:
        if not given:
            raise Unauthorized(f"missing API key: send it in the {header} header")
        if not key_matches(given, digests):
            raise Unauthorized("invalid API key")

    return [Depends(require_api_key)]
