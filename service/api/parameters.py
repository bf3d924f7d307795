"""What every protocol adapter shares: the model-name path parameter, the one ``top_k`` check,
the model lookup, the error documentation, and what a route records for the access log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from service.api.dependencies import SettingsDep
from service.api.schemas import ErrorResponse
from service.engine.pipeline import Classified
from service.engine.registry import LoadedModel, ModelRegistry
from service.errors import InvalidParameters

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Empty, truncated or corrupt image; bad JSON body; image URL refused or disabled.",
    },
    404: {"model": ErrorResponse, "description": "Unknown model."},
    413: {"model": ErrorResponse, "description": "Body over the byte limit or image over the pixel limit."},
    415: {"model": ErrorResponse, "description": "Not an image, or an unsupported format."},
    422: {"model": ErrorResponse, "description": "Invalid parameter or form field."},
    502: {
        "model": ErrorResponse,
        "description": "`image_url`: the image host failed or redirected too often.",
    },
    504: {"model": ErrorResponse, "description": "`image_url`: the image host did not answer in time."},
    503: {
        "model": ErrorResponse,
        "description": "Model found but not loaded (see /health), or the server is busy (Retry-After).",
    },
}
UNAUTHORIZED = {"model": ErrorResponse, "description": "Missing or invalid API key."}


def error_docs(model: type, descriptions: dict[int, str], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses``: each with the error body ``model`` and its description."""
    return {s: {"model": model, "description": descriptions[s]} for s in statuses}


TOP_K_HELP = "How many classes to return, most probable first."
ModelName = Annotated[str, Path(max_length=64, description="A model name from `GET /models`.")]


def check_top_k(k: int, max_top_k: int, loc: tuple[str, ...]) -> int:
    """``k`` when it is at most ``max_top_k``; the one place the bound is checked, for the
    query parameter and the bodies that carry their own (native JSON, KServe V1 ``parameters``).

    Raises:
        InvalidParameters (422): in FastAPI's validation-error format, at ``loc``.
    """
    if k > max_top_k:
        raise InvalidParameters(
            [
                {
                    "type": "less_than_equal",
                    "loc": loc,
                    "msg": f"Input should be less than or equal to {max_top_k}",
                    "input": str(k),
                    "ctx": {"le": max_top_k},
                }
            ]
        )
    return k


async def top_k_param(
    settings: SettingsDep, top_k: Annotated[int | None, Query(ge=1, description=TOP_K_HELP)] = None
) -> int:
    """The ``top_k`` query parameter: ``settings.default_top_k`` when absent, at most
    ``settings.max_top_k``."""
    if top_k is None:
        return settings.default_top_k
    return check_top_k(top_k, settings.max_top_k, ("query", "top_k"))


TopK = Annotated[int, Depends(top_k_param)]


def served_model(request: Request, registry: ModelRegistry, name: str) -> LoadedModel:
    """``registry.require(name)``, recording the name (and version) for the access log and the
    per-model metrics (``service.middleware.request_context``).

    Raises: ``ModelNotFound`` (404), ``ModelUnavailable`` (503).
    """
    if registry.get(name) is not None:
        request.state.model = name  # only names the registry knows: bounded metrics cardinality
    model = registry.require(name)
    request.state.model_version = model.manifest.version
    return model


def record_work(request: Request, classified: Classified | float) -> None:
    """The worker seconds a request took, for the access log and metrics."""
    request.state.inference_seconds = classified if isinstance(classified, float) else classified.seconds
