"""Wire schemas (pydantic) for the HTTP API, kept apart from the numpy-side objects."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.engine.inference import Ranked
from service.engine.registry import LoadedModel


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

    @classmethod
    def ranking(cls, ranked: Sequence[Ranked]) -> list[ClassProbability]:
        """The wire form of a top-k ranking, most probable first."""
        return [cls(label=r.label, class_index=r.class_index, probability=r.probability) for r in ranked]


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

    @classmethod
    def of(cls, model: LoadedModel, ranked: Sequence[Ranked]) -> Prediction:
        """The answer for one image: its best class, that class's probability and the top-k."""
        best = ranked[0]
        return cls(
            model=model.name,
            model_version=model.manifest.version,
            prediction=best.label,
            class_index=best.class_index,
            confidence=best.probability,
            top_k=ClassProbability.ranking(ranked),
            for_real_predictions=model.manifest.for_real_predictions,
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


class DigitReading(WireModel):
    prediction: str = Field(description="The digit's most probable class label.", examples=["2"])
    class_index: int = Field(ge=0, examples=[2])
    confidence: float = Field(ge=0.0, le=1.0, examples=[0.99])
    box: list[int] = Field(
        min_length=4,
        max_length=4,
        description="[left, top, right, bottom] of the digit's ink, pixels of the upright image "
        "(right and bottom exclusive).",
        examples=[[112, 80, 190, 205]],
    )
    top_k: list[ClassProbability]


class NumberReading(WireModel):
    """The number read from the image, and each of its digits, left to right."""

    model: str = Field(examples=["mnist"])
    model_version: str = Field(examples=["1.0.0"])
    number: str = Field(description="The digits, left to right.", examples=["2024"])
    confidence: float = Field(
        ge=0.0, le=1.0, description="Product of the digits' confidences.", examples=[0.96]
    )
    digits: list[DigitReading]

    @classmethod
    def of(
        cls, model: LoadedModel, digits: Sequence[tuple[tuple[int, int, int, int], Sequence[Ranked]]]
    ) -> NumberReading:
        """The answer for the digits read (``service.engine.numbers.read_number``): each
        digit's box and ranking, left to right."""
        readings = [
            DigitReading(
                prediction=ranked[0].label,
                class_index=ranked[0].class_index,
                confidence=ranked[0].probability,
                box=list(box),
                top_k=ClassProbability.ranking(ranked),
            )
            for box, ranked in digits
        ]
        return cls(
            model=model.name,
            model_version=model.manifest.version,
            number="".join(d.prediction for d in readings),
            confidence=math.prod(d.confidence for d in readings),
            digits=readings,
        )
