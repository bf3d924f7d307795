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
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from service.manifest import ImageNetPreprocessing

from . import artifacts, evaluate, latency
from .calibration import ArrayCalibrationReader
from .imagenet_data import IMAGENET_DIR, class_names, labelled_images, preprocess_files
from .onnx_export import INPUT_NAME, export_keras
from .quantize import QuantizationConfig, count_quantized_nodes, quantize

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
    mode: str
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
RESAMPLE = "bilinear"


@dataclass(frozen=True)
class KerasAppOptions:
    """Options for ``build``.

    Args:
        architecture: key of ``ARCHITECTURES``.
        weights: ``"imagenet"``, ``"none"`` or a path to a ``.keras`` / ``.h5`` file.
        out: build directory (fp32 and int8 ONNX, manifest, report).
        name: model name in the manifest (default: the architecture, plus ``_<alpha>``).
        alpha: width multiplier for MobileNets (``None`` = Keras default 1.0).
        val_dir / calib_dir: real images with ``labels.csv`` (evaluation / calibration).
        eval_images: validation images evaluated (0 = all).
        calibration_images: calibration images used, a seeded random subset.
        latency_runs: timed batch-of-one inferences per engine.
        quantization: int8 settings (per-channel, types, calibration method, exclusions).
        seed: seeds the calibration subset and the random weights.
    """

    architecture: str
    weights: str
    out: Path
    name: str | None = None
    alpha: float | None = None
    version: str = "1.0.0"
    val_dir: Path = IMAGENET_DIR / "val"
    calib_dir: Path = IMAGENET_DIR / "calib"
    class_index: Path = IMAGENET_DIR / "imagenet_class_index.json"
    eval_images: int = 0
    calibration_images: int = 1000
    latency_runs: int = 30
    quantization: QuantizationConfig | None = None
    seed: int = 1234

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; one of {sorted(ARCHITECTURES)}")
        if self.alpha is not None and not ARCHITECTURES[self.architecture].alpha:
            raise ValueError(f"--alpha applies to MobileNets only, not {self.architecture}")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise ValueError(f"weights must be 'imagenet', 'none' or an existing file: {self.weights}")

    @property
    def model_name(self) -> str:
        if self.name:
            return self.name
        return self.architecture + (f"_{self.alpha:g}" if self.alpha is not None else "")

    @property
    def weights_kind(self) -> str:
        return "random" if self.weights == "none" else "pretrained"


def default_quantization(architecture: str) -> QuantizationConfig:
    """The int8 settings chosen for ``architecture``: per-channel QDQ, uint8 activations AND
    uint8 weights (U8U8), min-max calibration, Softmax kept in float.

    Measured with MobileNet v1 0.75 (depthwise-heavy, the hard case) on the 1000 ImageNet val
    images, 300 calibration images, on this project's CPU (x86 AVX2 *without* VNNI); fp32 top-1
    0.785: U8S8 min-max 0.689; S8S8 0.689 (run as U8S8); U8S8 + reduce_range (7-bit weights)
    0.774; U8S8 percentile 99.999 + reduce_range 0.768 (and 10x slower to calibrate); U8U8
    min-max 0.780. The U8S8 loss is the int16 saturation of AVX2's u8 x s8 multiply-add
    (``vpmaddubsw``), which VNNI CPUs do not have (OpenVINO, "Saturation (overflow) issue");
    ONNX Runtime's U8U8 kernels widen to int16 before multiplying, so they cannot saturate.
    The same choice is applied to every architecture: it is correct on any x86 CPU.
    """
    del architecture  # one choice fits all today; kept for per-architecture tuning
    return QuantizationConfig(
        per_channel=True, activation_type="uint8", weight_type="uint8", calibration="minmax"
    )


def load_model(options: KerasAppOptions):
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


def fit_batchnorm_statistics(model, images: np.ndarray) -> int:
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


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def output_kind(model) -> str:
    """``softmax`` when the last layer applies one (every keras.applications head), else logits."""
    activation = getattr(model.layers[-1], "activation", None)
    return "softmax" if getattr(activation, "__name__", "") == "softmax" else "logits"


def preprocessing_for(architecture: str) -> ImageNetPreprocessing:
    return ImageNetPreprocessing(
        mode=ARCHITECTURES[architecture].mode, resize_shorter=RESIZE_SHORTER, resample=RESAMPLE
    )


def build(options: KerasAppOptions) -> Path:
    """Load, export, quantize and validate; returns the build directory holding the manifest."""
    name, out = options.model_name, options.out
    out.mkdir(parents=True, exist_ok=True)
    tag = f"[{name}]"
    model = load_model(options)
    height, width, channels = model.input_shape[1:]
    if channels != 3 or height is None or width is None:
        raise ValueError(f"{name}: need a static H x W x 3 input, model has {model.input_shape}")
    spec = preprocessing_for(options.architecture)
    labels = class_names(options.class_index)
    if model.output_shape[-1] != len(labels):
        raise ValueError(f"{name}: {model.output_shape[-1]} outputs but {len(labels)} class names")

    rng = np.random.default_rng(options.seed)
    calib_paths, _ = labelled_images(options.calib_dir)
    chosen = sorted(rng.permutation(len(calib_paths))[: options.calibration_images])
    calib = preprocess_files([calib_paths[i] for i in chosen], spec, (height, width))
    extra: dict = {}
    if options.weights_kind == "random":
        extra["batchnorm_statistics_images"] = fit_batchnorm_statistics(model, calib[:BN_IMAGES])

    print(f"{tag} exporting to ONNX", flush=True)
    fp32_path = export_keras(model, out / f"{name}.fp32.onnx", (height, width, 3), OUTPUT_NAME)
    reader = ArrayCalibrationReader(calib, INPUT_NAME)  # drops a ragged last batch
    config = replace(
        options.quantization or default_quantization(options.architecture),
        calibration_images=len(reader.images),
    )
    print(
        f"{tag} quantizing to int8 ({config.calibration}, {len(reader.images)} calibration images)",
        flush=True,
    )
    started = time.perf_counter()
    int8_path = quantize(fp32_path, out / f"{name}.int8.onnx", reader, config)
    quantize_seconds = time.perf_counter() - started

    val_paths, val_labels = labelled_images(options.val_dir, options.eval_images)
    print(f"{tag} validating on {len(val_paths)} real validation images", flush=True)
    images = preprocess_files(val_paths, spec, (height, width))
    metrics = validate(model, fp32_path, int8_path, images, val_labels, real=options.weights_kind != "random")
    metrics["quantize_seconds"] = round(quantize_seconds, 1)
    metrics |= latency.side_by_side(model, fp32_path, int8_path, images, runs=options.latency_runs)

    kind = output_kind(model)
    source = options.weights if options.weights in ("imagenet", "none") else Path(options.weights).name
    manifest = artifacts.write_manifest(
        int8_path,
        {
            "name": name,
            "version": options.version,
            "description": _description(options, source),
            "labels": labels,
            "input": {
                "name": INPUT_NAME,
                "shape": [None, height, width, 3],
                "dtype": "float32",
                "layout": "NHWC",
            },
            "output": {"name": OUTPUT_NAME, "kind": kind},
            "preprocessing": spec.model_dump(),
            "weights": options.weights_kind,
            "quantization": {**config.as_manifest(), **count_quantized_nodes(int8_path)},
            "metrics": {"architecture": options.architecture, "weights_source": source, **extra, **metrics},
        },
    )
    write_report(out, manifest.name, options.version, manifest.metrics, manifest.quantization, manifest.tools)
    print(f"{tag} done: {summary(metrics)}", flush=True)
    return out


def validate(
    model, fp32_path: Path, int8_path: Path, images: np.ndarray, labels: np.ndarray, real: bool
) -> dict:
    """Parity (always) and accuracy (``real`` weights only) of Keras, ONNX fp32 and ONNX int8.

    ``images``: float32 (N, H, W, 3) preprocessed validation images; ``labels``: (N,) indices.
    """
    keras_out = evaluate.keras_predict(model, images, batch_size=32)
    fp32_out = evaluate.onnx_predict(evaluate.onnx_session(fp32_path), images, batch_size=32)
    int8_out = evaluate.onnx_predict(evaluate.onnx_session(int8_path), images, batch_size=32)
    metrics: dict = {
        "eval_images": int(len(images)),
        "max_abs_delta_prob_keras_vs_onnx_fp32": evaluate.max_abs_diff(keras_out, fp32_out),
        "max_abs_delta_prob_onnx_fp32_vs_int8": evaluate.max_abs_diff(fp32_out, int8_out),
        "top1_agreement_keras_vs_onnx_fp32": evaluate.top1_agreement(keras_out, fp32_out),
        "top1_agreement_fp32_vs_int8": evaluate.top1_agreement(fp32_out, int8_out),
        # Robust to near-ties (random-weight logits are nearly flat, so int8 flips top-1 often).
        "fp32_top1_in_int8_top5": float(
            np.mean(
                (np.argsort(-int8_out, axis=1)[:, :5] == np.argmax(fp32_out, axis=1)[:, None]).any(axis=1)
            )
        ),
        # How input-dependent the outputs are (a collapsed random model predicts one class).
        "distinct_top1_classes_onnx_fp32": int(len(np.unique(np.argmax(fp32_out, axis=1)))),
    }
    if real:
        for key, out in (("keras_fp32", keras_out), ("onnx_fp32", fp32_out), ("onnx_int8", int8_out)):
            metrics[f"top1_{key}"] = evaluate.top1_accuracy(out, labels)
            metrics[f"top5_{key}"] = evaluate.topk_accuracy(out, labels, 5)
    metrics["size_fp32_bytes"] = fp32_path.stat().st_size
    metrics["size_int8_bytes"] = int8_path.stat().st_size
    return metrics


def write_report(out: Path, name: str, version: str, metrics: dict, quantization: dict, tools: dict) -> Path:
    """``report.md``: accuracy, parity, size and latency tables (Keras | ONNX fp32 | ONNX int8)."""
    engines = ("keras_fp32", "onnx_fp32", "onnx_int8")
    latency_keys = ("keras", "onnx_fp32", "onnx_int8")
    rows = ["| | Keras fp32 | ONNX fp32 | ONNX int8 |", "|---|---|---|---|"]
    for metric in ("top1", "top5", "accuracy"):
        if f"{metric}_keras_fp32" in metrics:
            rows.append(
                f"| {metric} | " + " | ".join(f"{metrics[f'{metric}_{e}']:.4f}" for e in engines) + " |"
            )
    for pct in ("p50", "p90"):
        rows.append(
            f"| latency {pct} (ms/image, batch 1) | "
            + " | ".join(f"{metrics[f'latency_ms_{pct}_{k}']:.1f}" for k in latency_keys)
            + " |"
        )
    rows.append(
        f"| size (MB) | - | {metrics['size_fp32_bytes'] / 1e6:.2f} | {metrics['size_int8_bytes'] / 1e6:.2f} |"
    )
    table = "\n".join(rows)
    return artifacts.write_report(
        out,
        f"{name} {version}: conversion report",
        {
            "Keras vs ONNX fp32 vs ONNX int8 (one run, side by side)": table,
            "All metrics": metrics,
            "Quantization": quantization,
            "Tools": tools,
        },
    )


def summary(metrics: dict) -> str:
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def _description(options: KerasAppOptions, source: str) -> str:
    arch = ARCHITECTURES[options.architecture].constructor
    alpha = f" alpha {options.alpha:g}" if options.alpha is not None else ""
    if options.weights_kind == "random":
        return f"keras.applications {arch}{alpha}, RANDOM weights (parity/speed only), int8 QDQ."
    return f"keras.applications {arch}{alpha} ImageNet classifier (weights: {source}), int8 QDQ."


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
