"""Any ``keras.applications`` ImageNet classifier -> int8 ONNX, validated on real images.

Weights: ``imagenet`` (Keras downloads and caches them: connected machines), a local file
(``.keras`` model, or ``.h5`` / ``.weights.h5`` weights for the architecture), or ``none``
(random initialisation: parity and speed checks only; the manifest says ``weights: random``
and the service flags the model as not for real predictions).

Validation, written into the manifest and ``report.md``: Keras vs ONNX fp32 max |delta prob|
on real ImageNet validation photos; fp32 vs int8 top-1 agreement; with real weights, top-1 /
top-5 of Keras fp32, ONNX fp32 and ONNX int8; sizes; latency of the three side by side.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.manifest import ImageNetPreprocessing, Resample

from .imagenet_data import IMAGENET_DIR, class_names, labelled_images, preprocess_files
from .quantize import QuantizationConfig
from .recipe import MetricGroup, ModelCard, Obtained, OutputKind, Recipe

OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class Architecture:
    """One ``keras.applications`` classifier and the preprocessing its weights were trained with.

    ``constructor``: attribute of ``keras.applications``; ``module``: the sub-module whose
    ``preprocess_input`` defines ``mode`` (tests compare the two on real photos); ``size``:
    default input height = width; ``alpha``: whether the width multiplier applies.
    """

    constructor: str
    module: str
    mode: Literal["tf", "caffe", "torch"]
    size: int = 224
    alpha: bool = False


# Modes from each module's preprocess_input (keras/src/applications/<module>.py).
ARCHITECTURES: dict[str, Architecture] = {
    "resnet50": Architecture("ResNet50", "resnet50", "caffe"),
    "resnet101": Architecture("ResNet101", "resnet", "caffe"),
    "resnet50_v2": Architecture("ResNet50V2", "resnet_v2", "tf"),
    "vgg16": Architecture("VGG16", "vgg16", "caffe"),
    "mobilenet": Architecture("MobileNet", "mobilenet", "tf", alpha=True),
    "mobilenet_v2": Architecture("MobileNetV2", "mobilenet_v2", "tf", alpha=True),
    "densenet121": Architecture("DenseNet121", "densenet", "torch"),
    "inception_v3": Architecture("InceptionV3", "inception_v3", "tf", size=299),
    "xception": Architecture("Xception", "xception", "tf", size=299),
}

# Resize policy chosen by measured accuracy (MobileNet v1 0.75, Keras fp32, 1000 ImageNet val
# images): direct bilinear resize to 224 gave top-1 0.785, shorter side -> 256 + centre crop
# 0.773 (bicubic: 0.783 / 0.779; shorter side -> 232: 0.777). It is also what Keras's
# ``load_img(path, target_size=(224, 224))`` does, i.e. the classic tutorials' pipeline.
RESIZE_SHORTER: int | None = None
RESAMPLE: Resample = "bilinear"


@dataclass
class KerasAppRecipe(Recipe):
    """Convert a ``keras.applications`` classifier (``python -m convert keras-app``).

    Args:
        architecture: key of ``ARCHITECTURES``.
        weights: ``"imagenet"``, ``"none"`` or a path to a ``.keras`` / ``.h5`` file.
        name: model name in the manifest (default: the architecture, plus ``_<alpha>``).
        alpha: width multiplier for MobileNets (``None`` = Keras default 1.0).
        val_dir / calib_dir: real images with ``labels.csv`` (evaluation / calibration).
        eval_images: validation images evaluated (0 = all).
        calibration_count: calibration images used, a seeded random subset.
        latency_runs: timed batch-of-one inferences per engine.
        quantization: int8 settings (default: ``default_quantization(architecture)``).
        seed: seeds the calibration subset and the random weights.
    """

    architecture: str
    weights: str
    name: str = ""
    alpha: float | None = None
    version: str = "1.0.0"
    val_dir: Path = IMAGENET_DIR / "val"
    calib_dir: Path = IMAGENET_DIR / "calib"
    class_index: Path = IMAGENET_DIR / "imagenet_class_index.json"
    eval_images: int = 0
    calibration_count: int = 1000
    latency_runs: int = 30
    quantization: QuantizationConfig | None = None  # type: ignore[assignment]  # None: the default
    seed: int = 1234
    save_keras: bool = False  # pretrained: the weights file is the source; random: nothing to keep

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; one of {sorted(ARCHITECTURES)}")
        if self.alpha is not None and not ARCHITECTURES[self.architecture].alpha:
            raise ValueError(f"--alpha applies to MobileNets only, not {self.architecture}")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise ValueError(f"weights must be 'imagenet', 'none' or an existing file: {self.weights}")
        self.name = self.name or self.architecture + (f"_{self.alpha:g}" if self.alpha is not None else "")
        self.quantization = self.quantization or default_quantization(self.architecture)
        self.metric_groups: tuple[MetricGroup, ...] = (
            ("agreement", "latency") if self.weights_kind == "random" else ("agreement", "topk", "latency")
        )
        self._input_size: tuple[int, int] = (ARCHITECTURES[self.architecture].size,) * 2

    @property
    def weights_kind(self) -> Literal["pretrained", "random"]:
        return "random" if self.weights == "none" else "pretrained"

    @property
    def weights_source(self) -> str:
        return self.weights if self.weights in ("imagenet", "none") else Path(self.weights).name

    @property
    def preprocessing(self) -> ImageNetPreprocessing:
        return preprocessing_for(self.architecture)

    def obtain(self) -> Obtained:
        model = load_model(self)
        height, width, channels = model.input_shape[1:]
        if channels != 3 or height is None or width is None:
            raise ValueError(f"{self.name}: need a static H x W x 3 input, model has {model.input_shape}")
        self._input_size = (height, width)
        facts: dict[str, Any] = {"architecture": self.architecture, "weights_source": self.weights_source}
        if self.weights_kind == "random":
            facts["batchnorm_statistics_images"] = fit_batchnorm_statistics(
                model, self.calibration_images()[:BN_IMAGES]
            )
        return Obtained(model, facts=facts)

    @cached_property
    def _calibration(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        paths, _ = labelled_images(self.calib_dir)
        chosen = sorted(rng.permutation(len(paths))[: self.calibration_count])
        return preprocess_files([paths[i] for i in chosen], self.preprocessing, self._input_size)

    def calibration_images(self) -> np.ndarray:
        return self._calibration

    def evaluation_data(self) -> tuple[np.ndarray, np.ndarray]:
        paths, labels = labelled_images(self.val_dir, self.eval_images)
        return preprocess_files(paths, self.preprocessing, self._input_size), labels

    def card(self, model: Any) -> ModelCard:
        arch = ARCHITECTURES[self.architecture].constructor
        alpha = f" alpha {self.alpha:g}" if self.alpha is not None else ""
        if self.weights_kind == "random":
            description = f"keras.applications {arch}{alpha}, RANDOM weights (parity/speed only), int8 QDQ."
        else:
            source = f"weights: {self.weights_source}"
            description = f"keras.applications {arch}{alpha} ImageNet classifier ({source}), int8 QDQ."
        return ModelCard(
            description=description,
            labels=class_names(self.class_index),
            output_name=OUTPUT_NAME,
            output_kind=output_kind(model),
            preprocessing=self.preprocessing,
            weights=self.weights_kind,
        )


def default_quantization(architecture: str) -> QuantizationConfig:
    """The int8 settings chosen for ``architecture``, the same for every architecture and CPU:
    U8S8 per-channel QDQ (uint8 activations, int8 weights) with 7-bit weights (``reduce_range``)
    and bias correction, min-max calibration, Softmax kept in float.

    Why, by measurement (``python -m benchmarks.accuracy.quantization``; docs/models.md, "One int8 file"):

    - U8S8 runs ONNX Runtime's fast int8 kernels (VNNI ``vpdpbusd``, AMX, arm64 dot products);
      7-bit weights keep AVX2's ``vpmaddubsw`` int16 pair sums (2 x 255 x 64 < 32,767) from
      saturating, so one file is correct on every x86 CPU (full-range U8S8 is not: MobileNet v1
      0.58 vs 0.76 top-1 on 50 images under qemu ``-cpu Haswell``).
    - Bias correction (``QuantizationConfig.bias_correction``) removes the mean output shift of
      the weights' rounding, which is what cost the 7-bit depthwise models their accuracy:
      MobileNet v1 0.75, 1,000 ImageNet val images, fp32 0.785: U8S8 reduce_range 0.773 ->
      0.788 with bias correction (top-1 agreement with fp32 0.92 -> 0.963); U8U8 (the previous
      choice, ~1.1x fp32 on VNNI) 0.780; full-range U8S8 0.771. Per-node weight types (uint8
      depthwise + int8 pointwise) were no more accurate (0.765-0.772) and 5x slower than fp32
      (mixed kernels), so they were dropped.

    ``architecture`` is accepted for the day a family needs its own choice; today all share one.
    """
    del architecture  # one format for all, see above
    return QuantizationConfig.x86_u8s8_reduced(calibration="minmax", bias_correction=True)


def load_model(options: KerasAppRecipe) -> Any:
    """The Keras classifier with its weights (random ones seeded with ``options.seed``)."""
    import keras

    if options.weights.endswith(".keras"):
        return keras.models.load_model(options.weights)
    arch = ARCHITECTURES[options.architecture]
    keras.utils.set_random_seed(options.seed)
    kwargs = {"alpha": options.alpha} if options.alpha is not None else {}
    weights = "imagenet" if options.weights == "imagenet" else None
    model = getattr(keras.applications, arch.constructor)(weights=weights, **kwargs)
    if options.weights not in ("imagenet", "none"):
        model.load_weights(options.weights)
    return model


# Random weights: batch-norm statistics are re-estimated on this many real calibration images.
BN_IMAGES = 32


def fit_batchnorm_statistics(model: Any, images: np.ndarray) -> int:
    """Set every BatchNormalization layer's moving mean / variance to the statistics of
    ``images`` (float32 (N, H, W, 3), preprocessed), in one training-mode forward pass with
    momentum 0. Weights stay random; returns N.

    Why: freshly initialised moving statistics (mean 0, variance 1) do not match real
    activations, so a random-weight ResNet50 gives the same top-1 class for every photo and a
    random MobileNetV2 a uniform 1/1000 output, which would make Keras-vs-ONNX parity and
    fp32-vs-int8 agreement vacuous. With the statistics of real images, outputs depend on the
    input and both checks mean something.
    """
    import keras

    layers = [layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        model(images, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return int(len(images))


def _all_layers(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def output_kind(model: Any) -> OutputKind:
    """``softmax`` when the last layer applies one (every keras.applications head), else logits."""
    activation = getattr(model.layers[-1], "activation", None)
    return "softmax" if getattr(activation, "__name__", "") == "softmax" else "logits"


def preprocessing_for(architecture: str) -> ImageNetPreprocessing:
    return ImageNetPreprocessing(
        mode=ARCHITECTURES[architecture].mode, resize_shorter=RESIZE_SHORTER, resample=RESAMPLE
    )


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
