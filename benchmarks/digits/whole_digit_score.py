"""Experiment: would a learned "this crop is one whole digit" score read more numbers right?

The number reader (``service.images.preprocessing.number``) offers several readings of wide
ink (one digit, or cut into two or three) and picks the one whose digits the classifier is
surest of; but the classifier is as sure of half a digit as of a whole one (docs/digits.md,
"Known limits"). This script measures the alternative without touching the service:

1. ``generate``: the reader's candidate crops (every crop of every reading) on numbers rendered
   from MNIST *train* digits past the tuning set, each labelled whole when its box overlaps a
   written digit's box by IoU >= ``WHOLE_IOU``, else a piece or a pair.
2. ``train``: a small Keras CNN on those 28x28 crops, sigmoid output P(whole).
3. ``evaluate``: each reading scored by mean(log confidence + weight x log P(whole)) instead
   of mean(log confidence), exact-string accuracy on the tuning numbers (train digits 0-999,
   seed 7, as ``benchmarks.digits.digit_numbers``) or the HTTP test's numbers (``--split test``).

Needs the ``convert`` extra (Keras). Commands, in order::

    nice -n 10 .venv/bin/python -m benchmarks.digits.whole_digit_score generate --out /tmp/pieces.npz
    nice -n 10 .venv/bin/python -m benchmarks.digits.whole_digit_score train --data /tmp/pieces.npz \
        --model /tmp/whole_digit.keras
    nice -n 10 .venv/bin/python -m benchmarks.digits.whole_digit_score evaluate \
        --model /tmp/whole_digit.keras --split train
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from service.engine.numbers import require_digit_model
from service.engine.pipeline import decode, predict
from service.engine.registry import LoadedModel, load_registry
from service.images.preprocessing import number as number_reading
from tests.harness.digit_scenes import render_numbers
from tests.harness.paths import MNIST_NPZ, PROJECT_ROOT

WHOLE_IOU = 0.7
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)

Box = tuple[int, int, int, int]


def _iou(a: Box, b: Box) -> float:
    width, height = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _digit_model() -> LoadedModel:
    return load_registry(PROJECT_ROOT / "models_onnx", 1).ready["mnist"]


def generate(first: int, last: int, seed: int, out: str) -> None:
    """Labelled candidate crops of numbers written with train digits ``first``..``last``."""
    with np.load(MNIST_NPZ) as data:
        digits, labels = data["x_train"][first:last], data["y_train"][first:last]
    model = _digit_model()
    spec = require_digit_model(model)
    crops, whole = [], []
    for photo in render_numbers(digits, labels, seed):
        seen: set[Box] = set()
        for segment in number_reading.segment_number(decode(photo.jpeg, 50_000_000), spec):
            for crop in (c for reading in segment.readings for c in reading):
                if crop.box in seen:
                    continue
                seen.add(crop.box)
                crops.append(np.round(crop.tensor[..., 0] * 255).astype(np.uint8))
                whole.append(max(_iou(crop.box, box) for box in photo.boxes) >= WHOLE_IOU)
    np.savez_compressed(out, x=np.array(crops), whole=np.array(whole))
    print(f"{out}: {len(whole)} crops, {np.mean(whole):.3f} whole")


def train(data_path: str, model_path: str, epochs: int) -> None:
    """A 3-conv CNN (16-32-32 filters, dense 64) on the crops; 10 % held out for validation."""
    import keras  # the convert extra: never on the serving path

    with np.load(data_path) as data:
        x = data["x"].astype(np.float32)[..., np.newaxis] / 255.0
        y = data["whole"].astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    held = len(y) // 10
    keras.utils.set_random_seed(1)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu", padding="same"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(2e-3), "binary_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    validation = (x[:held], y[:held])
    model.fit(x[held:], y[held:], batch_size=128, epochs=epochs, validation_data=validation, verbose=2)
    print(f"trained in {time.perf_counter() - start:.1f} s")
    model.save(model_path)


def evaluate(model_path: str, split: str) -> None:
    """Exact-string accuracy for each weight of log P(whole) (0: today's reader), and the
    share of numbers that some choice of readings spells (no score can do better)."""
    import keras

    with np.load(MNIST_NPZ) as data:
        if split == "test":
            digits, labels, seed = data["x_test"][2000:2600], data["y_test"][2000:2600], 2026
        else:
            digits, labels, seed = data["x_train"][:1000], data["y_train"][:1000], 7
    model = _digit_model()
    spec = require_digit_model(model)
    verifier = keras.saving.load_model(model_path)
    # Per number: per segment, per reading: (digits read, log confidences, log P(whole)).
    numbers: list[tuple[str, list[list[tuple[str, np.ndarray, np.ndarray]]]]] = []
    for photo in render_numbers(digits, labels, seed):
        segments = number_reading.segment_number(decode(photo.jpeg, 50_000_000), spec)
        crops = [c for segment in segments for reading in segment.readings for c in reading]
        options: list[list[tuple[str, np.ndarray, np.ndarray]]] = []
        if crops:
            batch = np.stack([c.tensor for c in crops]).astype(np.float32)
            probabilities = predict(model, batch)
            whole = verifier.predict(batch, verbose=0)[:, 0]
            index = 0
            for segment in segments:
                readings = []
                for reading in segment.readings:
                    rows = slice(index, index + len(reading))
                    index += len(reading)
                    read = "".join(str(int(p.argmax())) for p in probabilities[rows])
                    confidence = np.log(np.maximum(probabilities[rows].max(axis=1), 1e-9))
                    readings.append((read, confidence, np.log(np.maximum(whole[rows], 1e-6))))
                options.append(readings)
        numbers.append((photo.number, options))
    for weight in WEIGHTS:
        exact = 0
        for written, options in numbers:
            read = ""
            for readings in options:
                scores = [float(np.mean(c + weight * w)) for _, c, w in readings]
                read += readings[int(np.argmax(scores))][0]
            exact += read == written
        print(f"{split}: weight {weight}: exact {exact / len(numbers):.3f} of {len(numbers)}")
    # The ceiling of any score over these readings: a reading of every segment spells it.
    reachable = sum(
        any("".join(r[0] for r in pick) == written for pick in itertools.product(*options))
        for written, options in numbers
        if options
    )
    print(f"{split}: oracle over the same readings {reachable / len(numbers):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate")
    gen.add_argument("--first", type=int, default=1000)
    gen.add_argument("--last", type=int, default=13000)
    gen.add_argument("--seed", type=int, default=100)
    gen.add_argument("--out", required=True)
    fit = commands.add_parser("train")
    fit.add_argument("--data", required=True)
    fit.add_argument("--model", required=True)
    fit.add_argument("--epochs", type=int, default=5)
    check = commands.add_parser("evaluate")
    check.add_argument("--model", required=True)
    check.add_argument("--split", choices=["train", "test"], default="train")
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.first, args.last, args.seed, args.out)
    elif args.command == "train":
        train(args.data, args.model, args.epochs)
    else:
        evaluate(args.model, args.split)


if __name__ == "__main__":
    main()
