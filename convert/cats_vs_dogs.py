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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from service.manifest import ImageNetPreprocessing

from .imagenet_data import SHARED_DATA, class_folders, preprocess_files
from .keras_apps import RESAMPLE, RESIZE_SHORTER, default_quantization
from .onnx_export import INPUT_NAME
from .quantize import QuantizationConfig
from .recipe import MetricGroup, ModelCard, Obtained, Recipe

OUTPUT_NAME = "probability"
SIZE = 224
MOBILENET_V2_BLOCKS = 16  # block_1 ... block_16 in keras.applications.MobileNetV2
DATA_DIR = SHARED_DATA / "cats_vs_dogs"
BACKBONE_H5 = SHARED_DATA / "keras_weights" / "mobilenet_v2_1.0_224_no_top.h5"

# Sigmoid stays float: the confidence is not rounded to 1/256 steps (and it is one tiny op).
# The int8 format: see keras_apps.default_quantization for the measurements.
DEFAULT_QUANTIZATION = replace(default_quantization("mobilenet_v2"), op_types_excluded=("Softmax", "Sigmoid"))
PREPROCESSING = ImageNetPreprocessing(mode="tf", resize_shorter=RESIZE_SHORTER, resample=RESAMPLE)


@dataclass
class CatsDogsRecipe(Recipe):
    """Train the transfer model on a two-class photo folder.

    Args:
        data: directory with exactly two class sub-directories (sorted: class 0, class 1).
        backbone_weights: MobileNetV2 no-top weights file (``.h5``) or ``"imagenet"``.
        labels: the two label strings (default: the sub-directory names).
        validation_fraction: share of each class held out for validation (never trained on,
            never used for calibration).
        per_class_limit: first N files of each class (quick runs; 0 = all).
        epochs: head training epochs on the cached backbone features.
        fine_tune_blocks / fine_tune_epochs: optionally train the top N backbone blocks too.
        calibration_count: training images used for int8 calibration (seeded subset).
        latency_runs: timed batch-of-one inferences per engine.
        quantization: int8 settings.
        seed: seeds the split, the calibration subset, and Keras.
    """

    data: Path = DATA_DIR
    backbone_weights: str = "imagenet"
    name: str = "cats_vs_dogs"
    version: str = "1.0.0"
    labels: tuple[str, str] | None = None
    validation_fraction: float = 0.4
    per_class_limit: int = 0
    epochs: int = 30
    fine_tune_blocks: int = 0
    fine_tune_epochs: int = 2
    batch_size: int = 32
    calibration_count: int = 300
    latency_runs: int = 30
    quantization: QuantizationConfig = DEFAULT_QUANTIZATION
    seed: int = 1234
    metric_groups: tuple[MetricGroup, ...] = ("accuracy", "latency")

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if not 0 <= self.fine_tune_blocks <= MOBILENET_V2_BLOCKS:
            raise ValueError(f"fine_tune_blocks must be in [0, {MOBILENET_V2_BLOCKS}]")
        if self.backbone_weights != "imagenet" and not Path(self.backbone_weights).is_file():
            raise ValueError(f"backbone weights file not found: {self.backbone_weights}")
        self.classes, paths, labels = class_folders(self.data)
        if len(self.classes) != 2:
            raise ValueError(f"{self.data}: a sigmoid model needs exactly 2 classes, found {self.classes}")
        if self.per_class_limit:
            keep = np.concatenate([np.flatnonzero(labels == c)[: self.per_class_limit] for c in (0, 1)])
            paths, labels = [paths[i] for i in keep], labels[keep]
        self.paths, self.class_labels = paths, labels
        self.train_idx, self.val_idx = split(labels, self.validation_fraction, self.seed)

    def obtain(self) -> Obtained:
        print(
            f"[{self.name}] {len(self.train_idx)} training / {len(self.val_idx)} held-out photos "
            f"of {self.classes}",
            flush=True,
        )
        x_train = preprocess_files([self.paths[i] for i in self.train_idx], PREPROCESSING, (SIZE, SIZE))
        y_train = self.class_labels[self.train_idx].astype(np.float32)
        model = train(x_train, y_train, self)
        return Obtained(
            model,
            facts={
                "train_images": int(len(self.train_idx)),
                "epochs": self.epochs,
                "fine_tune_blocks": self.fine_tune_blocks,
                "split_seed": self.seed,
                "validation_fraction": self.validation_fraction,
            },
            training={
                "method": "sigmoid head on cached frozen-backbone features, Adam 1e-3, binary cross-entropy",
                "augmentation": "none",
                "fine_tune": f"top {self.fine_tune_blocks} blocks, {self.fine_tune_epochs} epochs, Adam 1e-5"
                if self.fine_tune_blocks
                else "none",
                "seed": self.seed,
            },
        )

    def calibration_images(self) -> np.ndarray:
        """A seeded subset of the training photos (never the held-out ones), in training order."""
        rng = np.random.default_rng(self.seed)
        chosen = np.sort(rng.permutation(len(self.train_idx))[: self.calibration_count])
        return preprocess_files([self.paths[self.train_idx[j]] for j in chosen], PREPROCESSING, (SIZE, SIZE))

    def evaluation_data(self) -> tuple[np.ndarray, np.ndarray]:
        x_val = preprocess_files([self.paths[i] for i in self.val_idx], PREPROCESSING, (SIZE, SIZE))
        return x_val, self.class_labels[self.val_idx]

    def card(self, model: Any) -> ModelCard:
        names = list(self.labels or self.classes)
        return ModelCard(
            description=f"{names[0]} vs {names[1]}: MobileNetV2 transfer model "
            "(ImageNet backbone, sigmoid head trained on real photos), int8 QDQ.",
            labels=names,
            output_name=OUTPUT_NAME,
            output_kind="sigmoid",
            preprocessing=PREPROCESSING,
            weights="trained",
        )


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


def backbone(weights: str) -> Any:
    """MobileNetV2 (alpha 1.0, 224, no top) with ImageNet weights from a file or Keras's cache."""
    import keras

    if weights == "imagenet":
        return keras.applications.MobileNetV2((SIZE, SIZE, 3), include_top=False, weights="imagenet")
    model = keras.applications.MobileNetV2((SIZE, SIZE, 3), include_top=False, weights=None)
    model.load_weights(weights)
    return model


def build_model(base: Any, dropout: float = 0.2) -> tuple[Any, Any]:
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


def train(x_train: np.ndarray, y_train: np.ndarray, options: CatsDogsRecipe) -> Any:
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


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
