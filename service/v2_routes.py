"""Open Inference Protocol (KServe V2 / Triton) REST routes.

``GET /v2/health/live`` and ``GET /v2/health/ready`` are open like ``/health`` (Kubernetes
probes); ready is 200 only while every model found is serving. ``GET /v2``, model metadata,
model ready and ``POST .../infer`` need an API key when keys are configured. The codec is
``service.protocols.oip``: inputs are encoded images (``BYTES``) or the model's preprocessed
``FP32`` tensor; the output is ``probabilities`` (FP32 [N, classes]) or, with the
classification extension, ``"<score>:<index>:<label>"`` strings. Errors are ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from .batching import classify_files, first_error, run_chunked, timed
from .config import Settings
from .dependencies import Limits, LimitsDep, RegistryDep, SettingsDep
from .errors import HTTPError, ModelNotFound
from .prediction import admit, find_model, in_worker
from .protocols import oip
from .registry import LoadedModel, ModelRegistry
from .routes import ModelName
from .schemas import WireModel
from .v1_routes import ErrorObject

SERVER_NAME = "edge-infer"

open_router = APIRouter(tags=["Open Inference Protocol (V2)"])
router = APIRouter(tags=["Open Inference Protocol (V2)"])

ModelVersion = Annotated[
    str, Path(max_length=64, description="The model's version (`GET /v2/models/{name}`).")
]


class ServerLive(WireModel):
    live: bool


class ServerReady(WireModel):
    ready: bool


class ServerMetadata(WireModel):
    name: str = Field(examples=[SERVER_NAME])
    version: str = Field(examples=["0.1.0"])
    extensions: list[str] = Field(examples=[list(oip.EXTENSIONS)])


class TensorMetadata(WireModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a variable dimension.")


class ModelMetadata(WireModel):
    name: str = Field(examples=["mnist"])
    versions: list[str] = Field(examples=[["1.0.0"]])
    platform: str = Field(examples=[oip.PLATFORM])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(WireModel):
    name: str
    ready: bool


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed inference request or image.",
        404: "Unknown model or version.",
        413: "Too many images, body over the byte limit, or image over the pixel limit.",
        415: "An image is not an image, or an unsupported format.",
        422: "Invalid path parameter.",
        503: "Model not loaded, or the server is busy (Retry-After).",
    }
    return {s: {"model": ErrorObject, "description": descriptions[s]} for s in statuses}


_TENSOR_SCHEMA = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string", "enum": [oip.IMAGE_INPUT, "image"]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["BYTES", "FP32"]},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
        },
        "data": {"type": "array", "description": "Base64 strings (BYTES) or numbers (FP32), flat or nested."},
    },
}
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "An inference request (JSON), optionally followed by binary tensor data; then the "
            "`Inference-Header-Content-Length` header gives the JSON's length in bytes."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data_output": {"type": "boolean"}},
                        },
                        "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": _TENSOR_SCHEMA},
                        "outputs": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {
                                    "name": {"type": "string", "enum": [oip.PROBABILITIES]},
                                    "parameters": {
                                        "type": "object",
                                        "properties": {
                                            "classification": {"type": "integer", "minimum": 1},
                                            "binary_data": {"type": "boolean"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "examples": {
                    "base64 image, top-3": {
                        "value": {
                            "id": "42",
                            "inputs": [
                                {
                                    "name": oip.IMAGE_INPUT,
                                    "shape": [1],
                                    "datatype": "BYTES",
                                    "data": ["iVBORw0KGgoAAAANSUhEUgAA..."],
                                }
                            ],
                            "outputs": [{"name": oip.PROBABILITIES, "parameters": {"classification": 3}}],
                        }
                    }
                },
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "JSON header then binary tensor data (Triton's binary tensor data extension).",
            },
        },
    }
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Inference response; binary outputs follow the JSON when asked for.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "example": {
                    "model_name": "mnist",
                    "model_version": "1.0.0",
                    "id": "42",
                    "outputs": [
                        {
                            "name": oip.PROBABILITIES,
                            "datatype": "BYTES",
                            "shape": [1, 3],
                            "data": ["0.998:7:7", "0.001:2:2", "0.0005:3:3"],
                        }
                    ],
                },
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    **_errors(400, 404, 413, 415, 422, 503),
}


# --- health and metadata -----------------------------------------------------------------------


@open_router.get("/v2/health/live", response_model=ServerLive)
async def v2_live() -> ServerLive:
    """The server answers (Kubernetes liveness probe)."""
    return ServerLive(live=True)


@open_router.get("/v2/health/ready", response_model=ServerReady, responses={503: {"model": ServerReady}})
async def v2_ready(registry: RegistryDep, settings: SettingsDep) -> Any:
    """200 while every model found is serving (and the default model is among them), else 503."""
    ready = _all_ready(registry, settings)
    return ServerReady(ready=True) if ready else JSONResponse({"ready": False}, status_code=503)


def _all_ready(registry: ModelRegistry, settings: Settings) -> bool:
    return bool(registry.ready) and not registry.unavailable and settings.default_model in registry.ready


@router.get("/v2", response_model=ServerMetadata)
async def v2_server_metadata(request: Request) -> ServerMetadata:
    """Server name, version and the protocol extensions it supports."""
    return ServerMetadata(**oip.server_metadata(SERVER_NAME, request.app.version))


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=_errors(404, 422, 503))
async def v2_model_metadata(name: ModelName, request: Request, registry: RegistryDep) -> ModelMetadata:
    """Inputs (an encoded-image `BYTES` input, and the model's own `FP32` tensor), outputs."""
    return ModelMetadata(**oip.model_metadata(find_model(request, registry, name).manifest))


@router.get(
    "/v2/models/{name}/versions/{version}", response_model=ModelMetadata, responses=_errors(404, 422, 503)
)
async def v2_model_version_metadata(
    name: ModelName, version: ModelVersion, request: Request, registry: RegistryDep
) -> ModelMetadata:
    """As `GET /v2/models/{name}`, for that version (404 for any other)."""
    return ModelMetadata(**oip.model_metadata(_versioned(request, registry, name, version).manifest))


@router.get("/v2/models/{name}/ready", response_model=ModelReady, responses=_errors(404, 422, 503))
async def v2_model_ready(name: ModelName, request: Request, registry: RegistryDep) -> ModelReady:
    """200 `{"name", "ready": true}` when serving; 503 when found but not loaded."""
    find_model(request, registry, name)
    return ModelReady(name=name, ready=True)


@router.get(
    "/v2/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=_errors(404, 422, 503)
)
async def v2_model_version_ready(
    name: ModelName, version: ModelVersion, request: Request, registry: RegistryDep
) -> ModelReady:
    """As `GET /v2/models/{name}/ready`, for that version."""
    _versioned(request, registry, name, version)
    return ModelReady(name=name, ready=True)


def _versioned(request: Request, registry: ModelRegistry, name: str, version: str) -> LoadedModel:
    model = find_model(request, registry, name)
    if version != model.manifest.version:
        raise ModelNotFound(
            f"model {name!r} has no version {version!r}; versions: [{model.manifest.version!r}]"
        )
    return model


# --- inference ---------------------------------------------------------------------------------


@router.post(
    "/v2/models/{name}/infer", response_class=Response, responses=INFER_RESPONSES, openapi_extra=INFER_BODY
)
async def v2_infer(
    name: ModelName, request: Request, settings: SettingsDep, registry: RegistryDep, limits: LimitsDep
) -> Response:
    """Classify a batch: encoded images (`image_bytes`, BYTES) or preprocessed FP32 tensors."""
    return await _infer(request, find_model(request, registry, name), settings, limits)


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    response_class=Response,
    responses=INFER_RESPONSES,
    openapi_extra=INFER_BODY,
)
async def v2_infer_version(
    name: ModelName,
    version: ModelVersion,
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    limits: LimitsDep,
) -> Response:
    """As `POST /v2/models/{name}/infer`, for that version (404 for any other)."""
    return await _infer(request, _versioned(request, registry, name, version), settings, limits)


async def _infer(request: Request, model: LoadedModel, settings: Settings, limits: Limits) -> Response:
    async with admit(limits.admission):
        body = await request.body()
        header_length = request.headers.get(oip.HEADER_LENGTH)
        encoded, request.state.inference_seconds = await in_worker(
            limits.workers, timed, _infer_blocking, model, body, header_length, settings
        )
    return Response(encoded.body, media_type=encoded.media_type, headers=encoded.headers)


def _infer_blocking(
    model: LoadedModel, body: bytes, header_length: str | None, settings: Settings
) -> oip.EncodedResponse:
    """Parse, classify and encode (worker thread: large JSON bodies must not stall the loop)."""
    request = oip.parse_request(body, header_length, model.manifest, settings.max_batch_images)
    if request.batch.files is not None:
        outcomes = classify_files(model, request.batch.files, settings.max_image_pixels, settings.batch_chunk)
        failed = first_error(outcomes)
        if failed is not None:
            index, error = failed
            raise HTTPError(error.status_code, f"{oip.IMAGE_INPUT}[{index}]: {error.detail}")
        batch_probabilities = np.stack([o.probabilities for o in outcomes])  # type: ignore[misc]
    else:
        assert request.batch.tensor is not None
        batch_probabilities = run_chunked(model, request.batch.tensor, settings.batch_chunk)
        if not np.isfinite(batch_probabilities).all():
            # Finite but extreme inputs (say 1e38) overflow inside the model: the tensor's fault.
            raise oip.ProtocolError(
                f"the model's scores for input {model.manifest.input.name!r} are not finite; "
                "the tensor is outside what its preprocessing produces"
            )
    return oip.encode_response(
        model.name, model.manifest.version, request, batch_probabilities, model.manifest.labels
    )
