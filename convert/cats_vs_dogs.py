"""Cats vs dogs: the classic MobileNetV2 transfer model, trained, exported and quantized to int8.

Architecture (the TensorFlow transfer-learning tutorial's): MobileNetV2 (alpha 1.0, 224x224)
ImageNet backbone without its classifier, global average pooling, dropout, and one Dense unit
with a sigmoid = P(second class). Input: float32 NHWC (batch, 224, 224, 3) in [-1, 1] (Keras
``mobilenet_v2.preprocess_input``, mode ``tf``), built by the service's own preprocessing.

Data: any directory-per-class folder with exactly two classes (``cats/``, ``dogs/``), split
per class into train / held-out validation with a seeded permutation. The frozen backbone's
pooled features are computed once and the head is trained on them (fast, deterministic);
``fine_tune_blocks`` optionally then fine-tunes the top inverted-residual blocks end to end.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from service.manifest import ImageNetPreprocessing

from . import evaluate, latency
from .calibration import ArrayCalibrationReader
from .imagenet_data import class_folders, preprocess_files
from .keras_apps import RESAMPLE, RESIZE_SHORTER, default_quantization, summary, write_report
from .onnx_export import INPUT_NAME, export_keras
from .quantize import QuantizationConfig, count_quantized_nodes, quantize

OUTPUT_NAME = "probability"
SIZE = 224
MOBILENET_V2_BLOCKS = 16  # block_1 ... block_16 in keras.applications.MobileNetV2

# Sigmoid stays float: the confidence is not rounded to 1/256 steps (and it is one tiny op).
# U8U8 per-channel min-max: see keras_apps.default_quantization for the measurements.
DEFAULT_QUANTIZATION = replace(default_quantization("mobilenet_v2"), op_types_excluded=("Softmax", "Sigmoid"))


@dataclass(frozen=True)
class CatsDogsOptions:
    """Options for ``build``.

    Args:
        data: directory with exactly two class sub-directories (sorted: class 0, class 1).
        backbone_weights: MobileNetV2 no-top weights file (``.h5``) or ``"imagenet"``.
        out: build directory (Keras model, fp32 and int8 ONNX, manifest, report).
        labels: the two label strings (default: the sub-directory names).
        validation_fraction: share of each class held out for validation (never trained on,
            never used for calibration).
        per_class_limit: first N files of each class (quick runs; 0 = all).
        epochs: head training epochs on the cached backbone features.
        fine_tune_blocks / fine_tune_epochs: optionally train the top N backbone blocks too.
        calibration_images: training images used for int8 calibration (seeded subset).
        latency_runs: timed batch-of-one inferences per engine.
        quantization: int8 settings.
        seed: seeds the split, the calibration subset, and Keras.
    """

    data: Path
    backbone_weights: str
    out: Path
    name: str = "cats_vs_dogs"
    labels: tuple[str, str] | None = None
    validation_fraction: float = 0.4
    per_class_limit: int = 0
    epochs: int = 30
    fine_tune_blocks: int = 0
    fine_tune_epochs: int = 2
    batch_size: int = 32
    calibration_images: int = 300
    latency_runs: int = 30
    quantization: QuantizationConfig = DEFAULT_QUANTIZATION
    seed: int = 1234
    version: str = "1.0.0"

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0 <= self.fine_tune_blocks <= MOBILENET_V2_BLOCKS:
            raise ValueError(f"fine_tune_blocks must be in [0, {MOBILENET_V2_BLOCKS}]")
        if self.backbone_weights != "imagenet" and not Path(self.backbone_weights).is_file():
            raise ValueError(f"backbone weights file not found: {self.backbone_weights}")


PREPROCESSING = ImageNetPreprocessing(mode="tf", resize_shorter=RESIZE_SHORTER, resample=RESAMPLE)


def split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: (train indices, validation indices), each sorted."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = max(1, round(len(members) * fraction))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def backbone(weights: str):
    """MobileNetV2 (alpha 1.0, 224, no top) with ImageNet weights from a file or Keras's cache."""
    import keras

    if weights == "imagenet":
        return keras.applications.MobileNetV2((SIZE, SIZE, 3), include_top=False, weights="imagenet")
    model = keras.applications.MobileNetV2((SIZE, SIZE, 3), include_top=False, weights=None)
    model.load_weights(weights)
    return model


def build_model(base, dropout: float = 0.2):
    """(full model, head): image -> base -> global average pool -> dropout -> Dense(1, sigmoid).

    ``head`` maps pooled features (batch, 1280) to the probability; the full model shares its
    layers, so training the head on cached features trains the full model.
    """
    import keras
    from keras import layers

    head = keras.Sequential(
        [
            keras.Input((base.output_shape[-1],)),
            layers.Dropout(dropout),
            layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME),
        ],
        name="head",
    )
    inputs = keras.Input((SIZE, SIZE, 3), name=INPUT_NAME)
    # training=False keeps batch-norm in inference mode, also while fine-tuning (Keras guide).
    features = layers.GlobalAveragePooling2D(name="pool")(base(inputs, training=False))
    return keras.Model(inputs, head(features), name="cats_vs_dogs"), head


def train(x_train: np.ndarray, y_train: np.ndarray, options: CatsDogsOptions):
    """Train the head on cached backbone features, then optionally fine-tune the top blocks."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(options.seed)
    tf.config.experimental.enable_op_determinism()
    base = backbone(options.backbone_weights)
    base.trainable = False
    model, head = build_model(base)
    pooled = keras.Sequential([base, keras.layers.GlobalAveragePooling2D()])
    features = pooled.predict(x_train, batch_size=options.batch_size, verbose=0)
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    verbose = 1 if sys.stdout.isatty() else 2
    head.fit(features, y_train, epochs=options.epochs, batch_size=options.batch_size, verbose=verbose)
    if options.fine_tune_blocks:
        first = f"block_{MOBILENET_V2_BLOCKS - options.fine_tune_blocks + 1}_"
        base.trainable = True
        trainable = False
        for layer in base.layers:
            trainable = trainable or layer.name.startswith(first)
            layer.trainable = trainable
        model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="binary_crossentropy", metrics=["accuracy"])
        model.fit(
            x_train,
            y_train,
            epochs=options.fine_tune_epochs,
            batch_size=options.batch_size,
            shuffle=True,
            verbose=verbose,
        )
    return model


def build(options: CatsDogsOptions) -> Path:
    """Train, export, quantize and validate; returns the build directory holding the manifest."""
    from . import artifacts

    out, name = options.out, options.name
    out.mkdir(parents=True, exist_ok=True)
    tag = f"[{name}]"
    classes, paths, labels = class_folders(options.data)
    if len(classes) != 2:
        raise ValueError(f"{options.data}: a sigmoid model needs exactly 2 classes, found {classes}")
    if options.per_class_limit:
        keep = np.concatenate([np.flatnonzero(labels == c)[: options.per_class_limit] for c in (0, 1)])
        paths, labels = [paths[i] for i in keep], labels[keep]
    train_idx, val_idx = split(labels, options.validation_fraction, options.seed)
    print(f"{tag} {len(train_idx)} training / {len(val_idx)} held-out photos of {classes}", flush=True)
    x_train = preprocess_files([paths[i] for i in train_idx], PREPROCESSING, (SIZE, SIZE))
    y_train = labels[train_idx].astype(np.float32)

    started = time.perf_counter()
    model = train(x_train, y_train, options)
    train_seconds = time.perf_counter() - started
    model.save(out / f"{name}.keras")

    print(f"{tag} exporting to ONNX", flush=True)
    fp32_path = export_keras(model, out / f"{name}.fp32.onnx", (SIZE, SIZE, 3), OUTPUT_NAME)
    rng = np.random.default_rng(options.seed)
    calib = x_train[np.sort(rng.permutation(len(x_train))[: options.calibration_images])]
    reader = ArrayCalibrationReader(calib, INPUT_NAME)  # drops a ragged last batch
    config = replace(options.quantization, calibration_images=len(reader.images))
    print(
        f"{tag} quantizing to int8 ({config.calibration}, {len(reader.images)} training photos)", flush=True
    )
    int8_path = quantize(fp32_path, out / f"{name}.int8.onnx", reader, config)
    del x_train, calib, reader

    print(f"{tag} validating on {len(val_idx)} held-out photos", flush=True)
    x_val = preprocess_files([paths[i] for i in val_idx], PREPROCESSING, (SIZE, SIZE))
    metrics = validate(model, fp32_path, int8_path, x_val, labels[val_idx])
    metrics |= {
        "train_images": int(len(train_idx)),
        "epochs": options.epochs,
        "fine_tune_blocks": options.fine_tune_blocks,
        "train_seconds": round(train_seconds, 1),
        "split_seed": options.seed,
        "validation_fraction": options.validation_fraction,
    }
    metrics |= latency.side_by_side(model, fp32_path, int8_path, x_val, runs=options.latency_runs)
    label_names = list(options.labels or classes)
    manifest = artifacts.write_manifest(
        int8_path,
        {
            "name": name,
            "version": options.version,
            "description": f"{label_names[0]} vs {label_names[1]}: MobileNetV2 transfer model "
            f"(ImageNet backbone, sigmoid head trained on real photos), int8 QDQ.",
            "labels": label_names,
            "input": {
                "name": INPUT_NAME,
                "shape": [None, SIZE, SIZE, 3],
                "dtype": "float32",
                "layout": "NHWC",
            },
            "output": {"name": OUTPUT_NAME, "kind": "sigmoid"},
            "preprocessing": PREPROCESSING.model_dump(),
            "weights": "trained",
            "quantization": {**config.as_manifest(), **count_quantized_nodes(int8_path)},
            "metrics": metrics,
        },
    )
    write_report(out, name, options.version, manifest.metrics, manifest.quantization, manifest.tools)
    print(f"{tag} done: {summary(metrics)}", flush=True)
    return out


def validate(model, fp32_path: Path, int8_path: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """Held-out accuracy of Keras fp32, ONNX fp32 and ONNX int8, and their parity.

    ``images``: float32 (N, 224, 224, 3); ``labels``: (N,) 0/1. Outputs are (N, 1) sigmoids.
    """
    metrics = evaluate.compare_keras_onnx(model, fp32_path, int8_path, images, labels, batch_size=32)
    return {"eval_images": int(len(images)), **metrics}


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
