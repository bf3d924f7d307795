"""The digit model recipe: a small CNN trained on MNIST (``python -m convert mnist``).

Input: float32 NHWC (batch, 28, 28, 1) in [0, 1], light ink on black, as MNIST itself and as
the service's ``mnist_digit`` preprocessing produces. Output: softmax over the digits 0-9.
Export, int8 quantization, validation and the manifest are ``convert.pipeline``'s.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from service.images.preprocessing import mnist_digit_tensor
from service.manifest import MnistDigitPreprocessing

from .onnx_export import INPUT_NAME
from .quantize import QuantizationConfig
from .recipe import Augmentation, MetricGroup, ModelCard, Obtained, Recipe

NAME = "mnist"
LABELS = [str(d) for d in range(10)]
OUTPUT_NAME = "probabilities"

# Measured on the 10,000 test digits (fp32 0.9943) on an AVX2 (no VNNI) CPU, 1024 calibration
# digits: per-channel U8S8 min-max 0.9915 (top-1 agreement with fp32 0.9965, int16
# saturation), + 7-bit weights 0.9945 (0.9997) at 0.13 ms/image; per-channel U8U8 0.9944
# (0.9999) at 0.19 ms; per-tensor U8S8 entropy 0.9940 (0.9988).
# Command: python -m benchmarks.accuracy.quantization --family mnist
DEFAULT_QUANTIZATION = QuantizationConfig.x86_u8s8_reduced(calibration="minmax")

# The augmentation used when the recipe is given none: Keras preprocessing layers in the
# tf.data pipeline (uploads are never perfectly framed).
KERAS_LAYERS_AUGMENTATION = (
    "Keras layers: RandomTranslation(0.08, 0.08), RandomRotation(0.04), RandomZoom(0.08)"
)


def _photo_augmentation() -> Augmentation:
    from .digit_augment import photo_augmentation

    return photo_augmentation()


# ``--augment NAME`` choices: a factory returning the Augmentation (``None``: the Keras layers).
# "photo" (the default since issue 10) trains on digits drawn as phone photos and re-read by the
# service's preprocessing, besides clean jittered ones: convert/digit_augment.py.
AUGMENTATIONS: dict[str, Callable[[], Augmentation | None]] = {
    "keras-layers": lambda: None,
    "photo": _photo_augmentation,
}
DEFAULT_AUGMENTATION = "photo"


@dataclass
class DigitRecipe(Recipe):
    """Train the digit CNN on MNIST.

    Args:
        data: path to ``mnist.npz`` (``keras.datasets.mnist`` layout); ``None`` downloads it
            with ``keras.datasets.mnist.load_data()``.
        epochs: training epochs.
        train_limit / test_limit: use only the first N images (quick runs); 0 = all.
        calibration_count: training images used to calibrate int8 activation ranges.
        seed: seeds Python, numpy and TensorFlow; TensorFlow ops are made deterministic.
        augment: training-time augmentation of each (shuffled) float32 (B, 28, 28, 1) batch.
            ``None`` keeps the Keras-layer augmentation (``KERAS_LAYERS_AUGMENTATION``); an
            ``Augmentation`` replaces it and its ``description`` goes into the manifest's
            ``metrics["training"]`` and the report.
    """

    data: Path | None
    name: str = NAME
    version: str = "1.0.0"
    epochs: int = 10
    train_limit: int = 0
    test_limit: int = 0
    calibration_count: int = 1024
    batch_size: int = 128
    seed: int = 1234
    augment: Augmentation | None = None
    quantization: QuantizationConfig = DEFAULT_QUANTIZATION
    metric_groups: tuple[MetricGroup, ...] = ("accuracy",)
    evaluation_count_key: str = "test_images"

    @cached_property
    def _raw(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """uint8 (x_train, y_train, x_test, y_test) after the limits, before preprocessing."""
        x_train, y_train, x_test, y_test = load_mnist(self.data)
        if self.train_limit:
            x_train, y_train = x_train[: self.train_limit], y_train[: self.train_limit]
        if self.test_limit:
            x_test, y_test = x_test[: self.test_limit], y_test[: self.test_limit]
        return x_train, y_train, x_test, y_test

    def obtain(self) -> Obtained:
        x_train, y_train = to_model_input(self._raw[0]), self._raw[1]
        print(f"[{self.name}] training on {len(x_train)} images for {self.epochs} epochs", flush=True)
        model = train(x_train, y_train, self)
        augmentation = self.augment.description if self.augment else KERAS_LAYERS_AUGMENTATION
        return Obtained(
            model,
            facts={"train_images": len(x_train), "epochs": self.epochs},
            training={
                "augmentation": augmentation,
                "optimizer": "Adam, cosine decay from 2e-3",
                "batch_size": self.batch_size,
                "seed": self.seed,
            },
        )

    def calibration_images(self) -> np.ndarray:
        """A seeded random subset of the training digits, preprocessed as served."""
        x_train = self._raw[0]
        rng = np.random.default_rng(self.seed)
        return to_model_input(x_train[rng.permutation(len(x_train))[: self.calibration_count]])

    def evaluation_data(self) -> tuple[np.ndarray, np.ndarray]:
        _, _, x_test, y_test = self._raw
        return to_model_input(x_test), y_test

    def card(self, model: Any) -> ModelCard:
        return ModelCard(
            description="Handwritten digit classifier (CNN trained on MNIST), int8 QDQ.",
            labels=LABELS,
            output_name=OUTPUT_NAME,
            output_kind="softmax",
            preprocessing=MnistDigitPreprocessing(),
            weights="trained",
        )


def load_mnist(path: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): uint8 (N, 28, 28) images and uint8 (N,) labels."""
    if path is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        return x_train, y_train, x_test, y_test
    with np.load(path) as data:
        return data["x_train"], data["y_train"], data["x_test"], data["y_test"]


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], through the service's own
    ``mnist_digit`` preprocessing, so the model trains and validates on exactly what it is
    served (MNIST digits change only slightly: re-centring by integer shifts, faint-ink floor)."""
    spec = MnistDigitPreprocessing()
    return np.stack([mnist_digit_tensor(Image.fromarray(image), spec) for image in images])


def build_cnn():
    """Three 3x3 conv + batch-norm layers (32, 64, 128 filters) and a dense head; ~7.4 M MACs."""
    import keras
    from keras import layers

    def conv_bn_relu(x, filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        # momentum 0.9: moving statistics settle within a few dozen steps (short test runs).
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input((28, 28, 1), name=INPUT_NAME)
    x = layers.MaxPooling2D()(conv_bn_relu(inputs, 32))  # 14x14
    x = layers.MaxPooling2D()(conv_bn_relu(x, 64))  # 7x7
    x = conv_bn_relu(x, 128)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(10, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=NAME)


def train(x_train: np.ndarray, y_train: np.ndarray, recipe: DigitRecipe) -> Any:
    """Train ``build_cnn`` on shuffled, augmented batches (seeded, deterministic ops).

    The augmentation is ``recipe.augment`` (numpy, run in the tf.data pipeline on each batch
    with a generator seeded by ``recipe.seed``) or, when ``None``, Keras's random translation,
    rotation and zoom layers.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(recipe.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_cnn()
    steps = max(1, len(x_train) // recipe.batch_size) * max(1, recipe.epochs)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=recipe.seed)
        .batch(recipe.batch_size)
        .map(_batch_augmentation(recipe), num_parallel_calls=1)  # one call at a time: reproducible
        .prefetch(2)
    )
    model.fit(dataset, epochs=recipe.epochs, shuffle=False, verbose=1 if sys.stdout.isatty() else 2)
    return model


def _batch_augmentation(recipe: DigitRecipe) -> Any:
    """The tf.data map function ``(images, labels) -> (augmented images, labels)``."""
    import keras
    import tensorflow as tf
    from keras import layers

    if recipe.augment is None:
        augment = keras.Sequential(
            [
                layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=recipe.seed),
                layers.RandomRotation(0.04, fill_mode="constant", seed=recipe.seed),
                layers.RandomZoom(0.08, fill_mode="constant", seed=recipe.seed),
            ]
        )
        return lambda x, y: (augment(x, training=True), y)

    apply, rng = recipe.augment.apply, np.random.default_rng(recipe.seed)

    def numpy_augment(batch: np.ndarray) -> np.ndarray:
        return np.asarray(apply(batch, rng), dtype=np.float32)

    def map_batch(x: Any, y: Any) -> tuple[Any, Any]:
        augmented = tf.numpy_function(numpy_augment, [x], tf.float32, stateful=True)
        augmented.set_shape(x.shape)
        return augmented, y

    return map_batch


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
