"""Wire schemas (pydantic) for the HTTP API, kept apart from the numpy-side objects."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ClassProbability(BaseModel):
    label: str = Field(examples=["7"])
    class_index: int = Field(ge=0, examples=[7])
    probability: float = Field(ge=0.0, le=1.0, examples=[0.998])


class Prediction(BaseModel):
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


class InputInfo(BaseModel):
    name: str
    shape: list[int | None]
    dtype: str
    layout: str


class ModelInfo(BaseModel):
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


class ModelSummary(BaseModel):
    name: str
    version: str
    description: str
    num_classes: int
    for_real_predictions: bool


class ModelList(BaseModel):
    default_model: str
    models: list[ModelSummary]


class UnavailableInfo(BaseModel):
    name: str
    reason: str


class Health(BaseModel):
    status: str = Field(description="'ok' when every model found is serving, else 'degraded'.")
    models: list[str] = Field(description="Models loaded and verified.")
    unavailable: list[UnavailableInfo] = Field(description="Models found but not served.")


class ErrorResponse(BaseModel):
    detail: Any = Field(description="What was wrong with the request.")
