"""Wire schemas (pydantic) for the HTTP API, kept apart from the numpy-side objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WireModel(BaseModel):
    """Base of every request/response body: its validator and serializer are built on first use.

    ``defer_build``: a class statement then costs only the field collection, and FastAPI's
    ``TypeAdapter`` of a route's ``response_model`` / ``responses`` model (``Annotated[Model, ...]``)
    defers too (pydantic reads the model's config). Lambda's init phase pays for none of the ~25
    schemas; the first request on a route builds only the ones it returns (~1 ms each), and
    ``/openapi.json`` builds them all when first asked.
    """

    model_config = ConfigDict(defer_build=True)


class ClassProbability(WireModel):
    label: str = Field(examples=["7"])
    class_index: int = Field(ge=0, examples=[7])
    probability: float = Field(ge=0.0, le=1.0, examples=[0.998])


class Prediction(WireModel):
    """The answer for one image: the most probable class, its probability, and the top-k."""

    model: str = Field(examples=["mnist"])
    model_version: str = Field(examples=["1.0.0"])
    prediction: str = Field(description="Label of the most probable class.", examples=["7"])
    class_index: int = Field(ge=0, examples=[7])
    confidence: float = Field(
        ge=0.0, le=1.0, description="Probability of the predicted class.", examples=[0.998]
    )
    top_k: list[ClassProbability]
    for_real_predictions: bool = Field(
        description="False for random-weight models built only for parity and speed tests."
    )


class InputInfo(WireModel):
    name: str
    shape: list[int | None]
    dtype: str
    layout: str


class ModelInfo(WireModel):
    name: str
    version: str
    task: str
    description: str
    labels: list[str]
    num_classes: int
    input: InputInfo
    output_kind: str
    preprocessing: dict[str, Any]
    weights: str
    for_real_predictions: bool
    size_bytes: int
    sha256: str
    quantization: dict[str, Any]
    metrics: dict[str, Any]
    tools: dict[str, str]


class ModelSummary(WireModel):
    name: str
    version: str
    description: str
    num_classes: int
    for_real_predictions: bool


class ModelList(WireModel):
    default_model: str
    models: list[ModelSummary]


class UnavailableInfo(WireModel):
    name: str
    reason: str


class Health(WireModel):
    status: str = Field(description="'ok' when every model found is serving, else 'degraded'.")
    models: list[str] = Field(description="Models loaded and verified.")
    unavailable: list[UnavailableInfo] = Field(description="Models found but not served.")


class ErrorResponse(WireModel):
    detail: Any = Field(description="What was wrong with the request.")
