"""Open Inference Protocol (KServe V2 / Triton) REST routes.

``GET /v2/health/live`` and ``GET /v2/health/ready`` are open like ``/health`` (Kubernetes
probes); ready is 200 only while every model found is serving. ``GET /v2``, model metadata,
model ready and ``POST .../infer`` need an API key when keys are configured. The codec is
``service.api.protocols.oip``: inputs are encoded images (``BYTES``) or the model's preprocessed
``FP32`` tensor; the output is ``probabilities`` (FP32 [N, classes]) or, with the
classification extension, ``"<score>:<index>:<label>"`` strings. Errors are ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from service.api.dependencies import AdmissionDep, RegistryDep, SettingsDep
from service.api.openapi import schema_ref
from service.api.parameters import ModelName, error_docs, record_work, served_model
from service.api.protocols import oip
from service.api.schemas import WireModel
from service.api.v1 import ErrorObject
from service.config import Settings
from service.engine.admission import Admission
from service.engine.registry import LoadedModel, ModelRegistry
from service.errors import HTTPError, ModelNotFound

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


ERROR_DESCRIPTIONS = {
    400: "Malformed inference request or image.",
    404: "Unknown model or version.",
    413: "Too many images, body over the byte limit, or image over the pixel limit.",
    415: "An image is not an image, or an unsupported format.",
    422: "Invalid path parameter.",
    503: "Model not loaded, or the server is busy (Retry-After).",
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return error_docs(ErrorObject, ERROR_DESCRIPTIONS, *statuses)


INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "An inference request (JSON), optionally followed by binary tensor data; then the "
            "`Inference-Header-Content-Length` header gives the JSON's length in bytes."
        ),
        "content": {
            "application/json": {
                "schema": schema_ref(oip.InferenceRequestBody),
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
                "schema": schema_ref(oip.InferenceResponseBody),
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
    if registry.readiness(settings.default_model).ready:
        return ServerReady(ready=True)
    return JSONResponse({"ready": False}, status_code=503)


@router.get("/v2", response_model=ServerMetadata)
async def v2_server_metadata(request: Request) -> ServerMetadata:
    """Server name, version and the protocol extensions it supports."""
    return ServerMetadata(**oip.server_metadata(SERVER_NAME, request.app.version))


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=_errors(404, 422, 503))
async def v2_model_metadata(name: ModelName, request: Request, registry: RegistryDep) -> ModelMetadata:
    """Inputs (an encoded-image `BYTES` input, and the model's own `FP32` tensor), outputs."""
    return ModelMetadata(**oip.model_metadata(served_model(request, registry, name).manifest))


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
    served_model(request, registry, name)
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
    model = served_model(request, registry, name)
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
    name: ModelName, request: Request, settings: SettingsDep, registry: RegistryDep, admission: AdmissionDep
) -> Response:
    """Classify a batch: encoded images (`image_bytes`, BYTES) or preprocessed FP32 tensors."""
    return await _infer(request, served_model(request, registry, name), settings, admission)


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
    admission: AdmissionDep,
) -> Response:
    """As `POST /v2/models/{name}/infer`, for that version (404 for any other)."""
    return await _infer(request, _versioned(request, registry, name, version), settings, admission)


async def _infer(request: Request, model: LoadedModel, settings: Settings, admission: Admission) -> Response:
    async with admission.admit():
        body = await request.body()
        # In a worker thread: a large JSON tensor must not stall the event loop while it parses.
        parsed = await admission.in_worker(
            oip.parse_request,
            body,
            request.headers.get(oip.HEADER_LENGTH),
            model.manifest,
            settings.max_batch_images,
        )
        classified = await admission.classify(model, parsed.inputs, None)
    failed = classified.first_error()
    if failed is not None:
        index, error = failed
        raise HTTPError(error.status_code, f"{oip.IMAGE_INPUT}[{index}]: {error.detail}")
    record_work(request, classified)
    encoded = oip.encode_response(
        model.name, model.manifest.version, parsed, classified.probabilities(), model.manifest.labels
    )
    return Response(encoded.body, media_type=encoded.media_type, headers=encoded.headers)
