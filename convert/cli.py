"""Command line: ``python -m convert {mnist,cats-vs-dogs,keras-app} ... [--publish MODEL_DIR]``.

Each sub-command builds its family's recipe from the flags and runs the one pipeline
(``convert.pipeline.build``); ``--publish`` then copies the int8 model, manifest and report into
``MODEL_DIR/<name>``. Quantization flags are shared by every family.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.config import DEFAULT_MODEL_DIR, PROJECT_ROOT

if TYPE_CHECKING:
    from .quantize import QuantizationConfig
    from .recipe import Recipe

DEFAULT_BUILD_DIR = PROJECT_ROOT / "build" / "models"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
MNIST_NPZ = SHARED_DATA / "mnist" / "mnist.npz"


def parser() -> argparse.ArgumentParser:
    """The ``python -m convert`` argument parser (sub-commands ``mnist``, ``cats-vs-dogs``, ``keras-app``)."""
    from .cats_vs_dogs import BACKBONE_H5, DATA_DIR
    from .imagenet_data import IMAGENET_DIR
    from .keras_apps import ARCHITECTURES
    from .mnist import AUGMENTATIONS, DEFAULT_AUGMENTATION
    from .quantize import PRESETS

    root = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    mnist = commands.add_parser("mnist", help="train the digit CNN and convert it to int8 ONNX")
    mnist.add_argument(
        "--data",
        type=Path,
        default=MNIST_NPZ if MNIST_NPZ.exists() else None,
        help="mnist.npz in the keras.datasets layout (default: ../shared/data/mnist/mnist.npz "
        "if present, else download with keras.datasets.mnist.load_data())",
    )
    mnist.add_argument("--epochs", type=int, default=10)
    mnist.add_argument("--train-limit", type=int, default=0, help="first N training images (0 = all)")
    mnist.add_argument("--test-limit", type=int, default=0, help="first N test images (0 = all)")
    mnist.add_argument(
        "--augment",
        choices=sorted(AUGMENTATIONS),
        default=DEFAULT_AUGMENTATION,
        help="training-time augmentation of the digit batches",
    )
    _add_common(mnist, calibration_images=1024, presets=PRESETS)

    cvd = commands.add_parser(
        "cats-vs-dogs",
        help="train the MobileNetV2 cats-vs-dogs transfer model and convert it to int8 ONNX",
        description="MobileNetV2 ImageNet backbone + one sigmoid output, trained on a "
        "directory-per-class image folder (first class = 0, second = 1, sorted by name).",
    )
    cvd.add_argument("--data", type=Path, default=DATA_DIR, help="folder with one sub-folder per class")
    cvd.add_argument(
        "--backbone-weights",
        default=str(BACKBONE_H5) if BACKBONE_H5.exists() else "imagenet",
        help="MobileNetV2 no-top weights: a .h5 file or 'imagenet' (default: ../shared file if present)",
    )
    cvd.add_argument("--name", default="cats_vs_dogs")
    cvd.add_argument(
        "--labels",
        nargs=2,
        default=None,
        metavar=("CLASS0", "CLASS1"),
        help="label names for the two sorted class folders (default: the folder names; "
        "'cat dog' for the bundled cats/ dogs/ data)",
    )
    cvd.add_argument("--validation-fraction", type=float, default=0.4)
    cvd.add_argument("--per-class-limit", type=int, default=0, help="first N images per class (0 = all)")
    cvd.add_argument("--epochs", type=int, default=30, help="head training epochs")
    cvd.add_argument("--fine-tune-blocks", type=int, default=0, help="also fine-tune the top N blocks")
    cvd.add_argument("--fine-tune-epochs", type=int, default=2)
    cvd.add_argument("--latency-runs", type=int, default=30)
    _add_common(cvd, calibration_images=300, presets=PRESETS)

    app = commands.add_parser(
        "keras-app",
        help="convert a keras.applications ImageNet classifier to int8 ONNX",
        description="Export, quantize (static QDQ, calibrated on real ImageNet images) and "
        "validate a keras.applications classifier.",
    )
    app.add_argument("architecture", choices=sorted(ARCHITECTURES))
    app.add_argument(
        "--weights",
        required=True,
        help="'imagenet' (Keras downloads and caches them), 'none' (random: parity/speed only) "
        "or a local .keras / .h5 file",
    )
    app.add_argument("--alpha", type=float, default=None, help="MobileNet width multiplier")
    app.add_argument("--name", default=None, help="model name (default: architecture[_alpha])")
    app.add_argument("--val-dir", type=Path, default=IMAGENET_DIR / "val")
    app.add_argument("--calib-dir", type=Path, default=IMAGENET_DIR / "calib")
    app.add_argument("--eval-images", type=int, default=0, help="validation images used (0 = all)")
    app.add_argument("--latency-runs", type=int, default=30)
    _add_common(app, calibration_images=1000, presets=PRESETS)
    return root


def _add_common(parser: argparse.ArgumentParser, calibration_images: int, presets: dict[str, Any]) -> None:
    parser.add_argument("--out", type=Path, default=None, help="build dir (default: build/models/NAME)")
    parser.add_argument(
        "--publish",
        type=Path,
        default=None,
        metavar="MODEL_DIR",
        help=f"copy the int8 model + manifest + report into MODEL_DIR/NAME (e.g. {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument("--calibration-images", type=int, default=calibration_images)
    parser.add_argument(
        "--quantization",
        choices=sorted(presets),
        default=None,
        help="named int8 format (default: the one chosen for the family); the flags below refine it",
    )
    parser.add_argument(
        "--calibration",
        choices=("minmax", "entropy", "percentile"),
        default=None,
        help="activation range method (default: the one chosen for the model)",
    )
    parser.add_argument("--percentile", type=float, default=None)
    parser.add_argument(
        "--weight-type", choices=("int8", "uint8"), default=None, help="weight integer type (default: chosen)"
    )
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights")
    parser.add_argument(
        "--exclude-nodes", nargs="*", default=None, metavar="NAME", help="ONNX node names kept in float32"
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--version", default="1.0.0")


def recipe_from(args: argparse.Namespace) -> Recipe:
    """The family recipe the parsed command line describes."""
    if args.command == "mnist":
        from .mnist import AUGMENTATIONS, DEFAULT_QUANTIZATION, DigitRecipe

        return DigitRecipe(
            data=args.data,
            version=args.version,
            epochs=args.epochs,
            train_limit=args.train_limit,
            test_limit=args.test_limit,
            calibration_count=args.calibration_images,
            seed=args.seed,
            augment=AUGMENTATIONS[args.augment](),
            quantization=_quantization(DEFAULT_QUANTIZATION, args),
        )
    if args.command == "cats-vs-dogs":
        from . import cats_vs_dogs

        return cats_vs_dogs.CatsDogsRecipe(
            data=args.data,
            backbone_weights=args.backbone_weights,
            name=args.name,
            version=args.version,
            labels=_labels(args),
            validation_fraction=args.validation_fraction,
            per_class_limit=args.per_class_limit,
            epochs=args.epochs,
            fine_tune_blocks=args.fine_tune_blocks,
            fine_tune_epochs=args.fine_tune_epochs,
            calibration_count=args.calibration_images,
            latency_runs=args.latency_runs,
            quantization=_quantization(cats_vs_dogs.DEFAULT_QUANTIZATION, args),
            seed=args.seed,
        )
    from .keras_apps import KerasAppRecipe, default_quantization

    return KerasAppRecipe(
        architecture=args.architecture,
        weights=args.weights,
        name=args.name or "",
        alpha=args.alpha,
        version=args.version,
        val_dir=args.val_dir,
        calib_dir=args.calib_dir,
        eval_images=args.eval_images,
        calibration_count=args.calibration_images,
        latency_runs=args.latency_runs,
        quantization=_quantization(default_quantization(args.architecture), args),
        seed=args.seed,
    )


def _labels(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.labels:
        return args.labels[0], args.labels[1]
    from .cats_vs_dogs import DATA_DIR

    # The bundled folders are plural (cats/, dogs/); the classic responses say "cat" / "dog".
    return ("cat", "dog") if args.data.resolve() == DATA_DIR.resolve() else None


def _quantization(default: QuantizationConfig, args: argparse.Namespace) -> QuantizationConfig:
    """``default`` (or the ``--quantization`` preset) with the explicit quantization flags applied."""
    from .quantize import PRESETS

    config = default
    if args.quantization:  # the preset's format; the family's float-kept operators stay float
        config = replace(PRESETS[args.quantization], op_types_excluded=default.op_types_excluded)
    changes: dict[str, Any] = {}
    if args.calibration:
        changes["calibration"] = args.calibration
    if args.percentile is not None:
        changes["percentile"] = args.percentile
    if args.weight_type:
        changes["weight_type"] = args.weight_type
    if args.per_tensor:
        changes["per_channel"] = False
    if args.reduce_range:
        changes["reduce_range"] = True
    if args.exclude_nodes is not None:
        changes["nodes_excluded"] = tuple(args.exclude_nodes)
    return replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = parser().parse_args(argv)
    from . import artifacts, pipeline

    recipe = recipe_from(args)
    build_dir = pipeline.build(recipe, args.out or DEFAULT_BUILD_DIR / recipe.name)
    if args.publish:
        print(f"published to {artifacts.publish(build_dir, args.publish, recipe.name)}")
    return 0
