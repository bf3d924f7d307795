"""Users' own trained models, built in seconds on real data, for the ``convert import`` tests.

Each builder trains what a tutorial's reader would hold: a digit CNN on MNIST, and the
MobileNetV2 cats-vs-dogs transfer model (the ImageNet backbone from ``../shared`` with a head
trained on real photos, on cached backbone features so it takes seconds). Photos are split by
a seeded permutation into train / calibration / evaluation folders of symlinks (nothing from
``../shared`` is copied). Every model is also given its user's own preprocessing (``user_input``):
what the tutorial feeds it, computed here with Keras / Pillow / numpy, not with the service.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .support import MNIST_NPZ, SHARED_DATA

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PETS = SHARED_DATA / "cats_vs_dogs"
BACKBONE_H5 = SHARED_DATA / "keras_weights" / "mobilenet_v2_1.0_224_no_top.h5"
CLASSES = ("cats", "dogs")
TORCH_MEAN = np.array([0.485, 0.456, 0.406])
TORCH_STD = np.array([0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Folders:
    """Image folders laid out like a user's: ``train``/``calibration``/``evaluation`` each with
    one sub-folder per class; ``evaluation_files`` and ``evaluation_labels`` in sorted order."""

    train: Path
    calibration: Path
    evaluation: Path
    evaluation_files: list[Path]
    evaluation_labels: np.ndarray


def pet_folders(root: Path, train: int = 120, calibration: int = 50, evaluation: int = 100) -> Folders:
    """Per class: ``train`` / ``calibration`` / ``evaluation`` photos (seeded, disjoint)."""
    rng = np.random.default_rng(2026)
    for cls in CLASSES:
        files = sorted((PETS / cls).glob("*.jpg"))
        order = rng.permutation(len(files))
        bounds = {"train": (0, train), "calibration": (train, train + calibration)}
        bounds["evaluation"] = (train + calibration, train + calibration + evaluation)
        for split, (start, stop) in bounds.items():
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in order[start:stop]:
                (folder / files[i].name).symlink_to(files[i])
    return _folders(root)


def digit_folders(root: Path, train: int = 0, calibration: int = 200, evaluation: int = 500) -> Folders:
    """MNIST as a user's PNG folders: calibration from the training digits, evaluation from the
    test digits (one sub-folder per digit, named ``0`` ... ``9``)."""
    del train
    with np.load(MNIST_NPZ) as data:
        splits = {
            "calibration": (data["x_train"][:calibration], data["y_train"][:calibration]),
            "evaluation": (data["x_test"][:evaluation], data["y_test"][:evaluation]),
        }
    for split, (images, labels) in splits.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:05d}.png")
    (root / "train").mkdir(exist_ok=True)
    return _folders(root)


def _folders(root: Path) -> Folders:
    classes = sorted(p.name for p in (root / "evaluation").iterdir())
    files, labels = [], []
    for index, cls in enumerate(classes):
        for path in sorted((root / "evaluation" / cls).iterdir()):
            files.append(path)
            labels.append(index)
    return Folders(root / "train", root / "calibration", root / "evaluation", files, np.array(labels))


def digit_cnn(seed: int = 7):
    """Keras 3 conv net trained 2 epochs on 12,000 MNIST training digits (x / 255): ~97-98 %."""
    import keras

    keras.utils.set_random_seed(seed)
    with np.load(MNIST_NPZ) as data:
        x, y = data["x_train"][:12000, ..., None] / 255.0, data["y_train"][:12000]
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    return model


def load_photos(paths: list[Path], size: int, grayscale: bool = False) -> np.ndarray:
    """uint8-valued float32 (N, size, size, C) as ``keras.utils.load_img(target_size=,
    interpolation="bilinear")`` gives them (Pillow, straight to the size). ``load_img``'s own
    default is ``"nearest"``; a model trained on that is imported with ``--resample nearest``."""
    import keras

    mode = "grayscale" if grayscale else "rgb"
    loaded = [
        keras.utils.load_img(p, target_size=(size, size), color_mode=mode, interpolation="bilinear")
        for p in paths
    ]
    batch = np.stack([np.asarray(image, np.float32) for image in loaded])
    return batch[..., np.newaxis] if grayscale else batch


def torch_input(paths: list[Path], size: int, shorter: int) -> np.ndarray:
    """torchvision's ImageNet eval transform with Pillow and numpy: ``Resize(shorter)`` (bilinear),
    ``CenterCrop(size)``, ``ToTensor`` (x / 255), ``Normalize(mean, std)``: float32 (N, 3, size, size)."""
    batch = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        scale = shorter / min(image.size)
        image = image.resize(
            (round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR
        )
        left, top = (image.width - size) // 2, (image.height - size) // 2
        pixels = np.asarray(image.crop((left, top, left + size, top + size)), np.float64) / 255.0
        batch.append(((pixels - TORCH_MEAN) / TORCH_STD).transpose(2, 0, 1))
    return np.stack(batch).astype(np.float32)


def pet_classes(folders: Folders) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for index, cls in enumerate(CLASSES):
        for path in sorted((folders.train / cls).iterdir()):
            files.append(path)
            labels.append(index)
    return files, np.array(labels)


def keras3_pet_model(
    train_inputs: np.ndarray,
    labels: np.ndarray,
    softmax: bool = False,
    seed: int = 7,
    torch_inputs: bool = False,
):
    """Keras 3 MobileNetV2 (ImageNet backbone from ../shared, frozen) + pooled Dense head,
    trained on ``train_inputs`` (already preprocessed, NHWC). One sigmoid unit, or a 2-way
    softmax. ``torch_inputs``: the model takes torchvision-normalised pixels and maps them to
    the backbone's [-1, 1] in its first layer (as a PyTorch model whose weights expect them)."""
    import keras

    keras.utils.set_random_seed(seed)
    size = train_inputs.shape[1]
    base = keras.applications.MobileNetV2((size, size, 3), include_top=False, weights=None)
    base.load_weights(BACKBONE_H5)
    base.trainable = False
    inputs = keras.Input((size, size, 3), name="photo")
    x = inputs
    if torch_inputs:  # (x * std + mean) * 2 - 1
        x = keras.layers.Rescaling(scale=list(2 * TORCH_STD), offset=list(2 * TORCH_MEAN - 1))(x)
    pooled = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    head = (
        keras.layers.Dense(2, activation="softmax")
        if softmax
        else keras.layers.Dense(1, activation="sigmoid")
    )
    model = keras.Model(inputs, head(pooled))
    features = keras.Model(inputs, pooled).predict(train_inputs, batch_size=32, verbose=0)
    trainer = keras.Sequential([keras.Input(features.shape[1:]), head])
    loss = "sparse_categorical_crossentropy" if softmax else "binary_crossentropy"
    trainer.compile(keras.optimizers.Adam(1e-3), loss)
    trainer.fit(
        features, labels.astype(np.float32 if not softmax else np.int64), epochs=40, batch_size=32, verbose=0
    )
    return model


def tf_keras_pet_model(train_inputs: np.ndarray, labels: np.ndarray, seed: int = 7):
    """The same transfer model written with tf.keras 2.x (the ``tf_keras`` package), as the
    classic tutorial's readers trained it: 150 x 150 input, sigmoid, pixels x 1/255."""
    import tensorflow as tf
    import tf_keras

    tf.random.set_seed(seed)
    size = train_inputs.shape[1]
    base = tf_keras.applications.MobileNetV2((size, size, 3), include_top=False, weights=None)
    base.load_weights(str(BACKBONE_H5))
    base.trainable = False
    inputs = tf_keras.Input((size, size, 3))
    pooled = tf_keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    head = tf_keras.layers.Dense(1, activation="sigmoid")
    model = tf_keras.Model(inputs, head(pooled))
    features = tf_keras.Model(inputs, pooled).predict(train_inputs, batch_size=32, verbose=0)
    trainer = tf_keras.Sequential([tf_keras.Input(features.shape[1:]), head])
    trainer.compile(tf_keras.optimizers.Adam(1e-3), "binary_crossentropy")
    trainer.fit(features, labels.astype(np.float32), epochs=40, batch_size=32, verbose=0)
    return model


def nchw_onnx(model, path: Path, size: int) -> Path:
    """``model`` (a Keras 3 NHWC model) as an fp32 ONNX file with an NCHW float input, the graph
    shape ``torch.onnx.export`` gives a torchvision model (tf2onnx ``inputs_as_nchw``)."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec((None, size, size, 3), tf.float32, name="input")]
    function = tf.function(lambda x: model(x, training=False), input_signature=signature)
    graph, _ = tf2onnx.convert.from_function(
        function, input_signature=signature, opset=17, inputs_as_nchw=["input"]
    )
    onnx.save(graph, str(path))
    return path
