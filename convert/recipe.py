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
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.manifest import (
    ImageNetPreprocessing,
    ImagePreprocessing,
    MnistDigitPreprocessing,
    OutputKind,
    TensorSpec,
)

from .quantize import QuantizationConfig

Preprocessing = MnistDigitPreprocessing | ImageNetPreprocessing | ImagePreprocessing
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

    # What the defaults below assume: ``model`` is a Keras model with one NHWC image input. A
    # family whose model is something else (``convert.importer``: a user's file in any format)
    # overrides them.

    #: the metrics' and report's name for the source model's engine (``accuracy_keras_fp32``...).
    source_key: str = "keras"
    #: ``keep_fp32``: the manifest describes (and ``--publish`` copies) the fp32 file, not int8.
    keep_fp32: bool = False

    def input_spec(self, model: Any) -> TensorSpec:
        """The manifest's input: NHWC with the Keras model's static H, W, C.

        Raises:
            ValueError: the input's H, W or C is dynamic.
        """
        height, width, channels = model.input_shape[1:]
        if height is None or width is None or channels is None:
            raise ValueError(f"{self.name}: need a static H x W x C input, model has {model.input_shape}")
        return TensorSpec(name="image", shape=[None, height, width, channels], dtype="float32", layout="NHWC")

    def output_units(self, model: Any) -> int:
        """Values per image of the model's output."""
        return int(model.output_shape[-1])

    def export(self, model: Any, path: Path, input_spec: TensorSpec, output_name: str) -> Path:
        """Write the fp32 ONNX file for ``model`` at ``path`` (Keras 3 ``model.export``)."""
        from .onnx_export import export_keras

        return export_keras(model, path, tuple(input_spec.height_width_channels), output_name)

    def source_predict(self, model: Any) -> Callable[[np.ndarray], np.ndarray]:
        """The source model on a preprocessed float32 batch -> float32 (N, units) outputs."""
        return lambda batch: np.asarray(model.predict(batch, batch_size=32, verbose=0))

    def source_call(self, model: Any) -> Callable[[np.ndarray], Any]:
        """One direct call of the source model on a batch of one, for batch-1 latency."""
        return lambda x: np.asarray(model(x, training=False))

    def review(self, out: Path, outputs: dict[str, np.ndarray], labels: np.ndarray | None) -> dict[str, Any]:
        """Extra metrics from the three engines' outputs on the evaluation images (and files
        written into ``out``, such as pictures); none by default."""
        del out, outputs, labels
        return {}

    def report_sections(self, metrics: dict[str, Any]) -> dict[str, str]:
        """Extra Markdown sections for ``report.md`` (heading -> body), placed after the table."""
        del metrics
        return {}
