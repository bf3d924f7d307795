"""What one model family supplies to the conversion pipeline (``convert.pipeline``).

A recipe answers only the questions whose answers differ between families: how the Keras
model is trained or loaded, what the manifest says about it (labels, preprocessing, output),
which real images calibrate int8, which labelled images evaluate it, and which metrics apply.
Exporting, quantizing, validating, writing the manifest and report, and publishing are the
pipeline's, and are the same for every family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from service.manifest import ImageNetPreprocessing, MnistDigitPreprocessing

from .quantize import QuantizationConfig

Preprocessing = MnistDigitPreprocessing | ImageNetPreprocessing
OutputKind = Literal["softmax", "logits", "sigmoid"]
Weights = Literal["trained", "pretrained", "random"]

# Metric groups a recipe can ask for (see ``convert.evaluate.validate``):
#   "accuracy": accuracy_{keras_fp32,onnx_fp32,onnx_int8} (top-1 of softmax or sigmoid outputs)
#   "topk":     top1_* / top5_* of the three engines (1000-class models with real weights)
#   "agreement": Keras vs fp32 top-1 agreement, fp32 top-1 within int8 top-5, distinct classes
#   "latency":  batch-1 p50 / p90 of Keras, ONNX fp32 and ONNX int8 side by side
MetricGroup = Literal["accuracy", "topk", "agreement", "latency"]


@dataclass(frozen=True)
class Augmentation:
    """A training-time augmentation of image batches, recorded in the manifest and report.

    ``apply(batch, rng)``: float32 (B, H, W, C) model inputs -> an augmented float32 array of
    the same shape; ``rng`` is the build's seeded generator, so a build is reproducible.
    ``description``: one line saying what it does and with which parameters.
    """

    description: str
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class ModelCard:
    """What the manifest says about the model besides its files and numbers."""

    description: str
    labels: list[str]
    output_name: str
    output_kind: OutputKind
    preprocessing: Preprocessing
    weights: Weights


@dataclass
class Obtained:
    """A Keras model ready to export, and what is worth recording about how it was made.

    ``facts``: flat values merged into the manifest's ``metrics`` (e.g. ``train_images``);
    ``training``: how it was trained (e.g. the augmentation), written under ``metrics["training"]``
    and as its own report section; empty when the model was loaded, not trained.
    """

    model: Any  # keras.Model (Keras is imported lazily)
    facts: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


class Recipe(ABC):
    """One model family. Subclasses are small dataclasses holding the family's options.

    Attributes every recipe sets (dataclass fields or class attributes):
        name / version: the manifest's name and version; files are ``<name>.fp32.onnx`` etc.
        quantization: the int8 settings (``calibration_images`` is filled in by the pipeline).
        metric_groups: which ``MetricGroup`` measurements apply.
        evaluation_count_key: the metrics key for the number of evaluation images.
        save_keras: also save ``<name>.keras`` in the build directory (trained models).
        latency_runs: timed batch-1 runs per engine when ``"latency"`` is measured.
    """

    name: str
    version: str
    quantization: QuantizationConfig
    metric_groups: tuple[MetricGroup, ...] = ("accuracy",)
    evaluation_count_key: str = "eval_images"
    save_keras: bool = True
    latency_runs: int = 30

    @abstractmethod
    def obtain(self) -> Obtained:
        """Train or load the Keras model (the slow step)."""

    @abstractmethod
    def calibration_images(self) -> np.ndarray:
        """float32 (N, H, W, C) real images, preprocessed as served, for int8 calibration."""

    @abstractmethod
    def evaluation_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(float32 (N, H, W, C) images preprocessed as served, int (N,) class indices)."""

    @abstractmethod
    def card(self, model: Any) -> ModelCard:
        """Labels, output, preprocessing and description of ``model`` for the manifest."""
