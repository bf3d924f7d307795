"""Command line: ``python -m convert {mnist,cats-vs-dogs,keras-app,import} ... [--publish MODEL_DIR]``.

Each sub-command builds its family's recipe from the flags and runs the one pipeline
(``convert.pipeline.build``); ``--publish`` then copies the int8 model, manifest and report into
``MODEL_DIR/<name>`` (atomically). Quantization flags are shared by every family.

``import MODEL`` converts a user's own trained model (``convert.importer``). Exit status: 0
converted (and published); 1 the int8 file lost more accuracy than ``--max-accuracy-drop``
allows (nothing published); 2 bad input (one line on stderr saying what: the model file,
labels, folders, flags).
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
    _add_import(commands, PRESETS)
    return root


def _add_import(commands: Any, presets: dict[str, Any]) -> None:
    from service.manifest import IMAGE_PRESETS

    imp = commands.add_parser(
        "import",
        help="convert your own trained model (.keras, .h5, SavedModel dir, .onnx) to int8 ONNX",
        description="Convert a trained image classifier to int8 ONNX, calibrated on your images and "
        "checked on your labelled images. A model file is code: convert only files you trust "
        "(serving loads nothing but the ONNX file). See docs/byom.md.",
    )
    imp.add_argument(
        "model", type=Path, metavar="MODEL", help=".keras, .h5/.hdf5, .onnx file or SavedModel dir"
    )
    imp.add_argument("--name", default=None, help="model name (default: the file's stem, made valid)")
    imp.add_argument("--labels", default=None, help="a,b,c or a file (one label per line, or a JSON list)")
    imp.add_argument("--preprocessing", choices=("image", "mnist_digit"), default="image")
    imp.add_argument(
        "--preset", choices=sorted(IMAGE_PRESETS), default=None, help="standard scale/mean/std/order"
    )
    imp.add_argument("--scale", default=None, help="pixel multiplier: a number or a fraction such as 1/255")
    imp.add_argument(
        "--mean", default=None, help="m or m1,m2,m3 subtracted after scaling (model's channel order)"
    )
    imp.add_argument("--std", default=None, help="s or s1,s2,s3 divided by after subtracting the mean")
    imp.add_argument("--channel-order", choices=("RGB", "BGR"), default=None)
    imp.add_argument(
        "--resize-shorter",
        type=int,
        default=None,
        metavar="N",
        help="resize the shorter side to N, then centre-crop to the input (default: resize straight to it)",
    )
    imp.add_argument(
        "--resample",
        choices=("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"),
        default="bilinear",
    )
    imp.add_argument("--layout", choices=("NHWC", "NCHW"), default=None, help="override the inferred layout")
    imp.add_argument(
        "--input-size", default=None, metavar="H,W", help="for models with a dynamic height/width"
    )
    imp.add_argument("--output-kind", choices=("softmax", "logits", "sigmoid"), default=None)
    imp.add_argument(
        "--calibration",
        dest="calibration_dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="images for int8 calibration (searched recursively; --calibration-images of them)",
    )
    imp.add_argument(
        "--evaluation",
        type=Path,
        default=None,
        metavar="DIR",
        help="labelled images: one sub-folder per class",
    )
    imp.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=1.0,
        metavar="PP",
        help="refuse to publish when int8 loses more than PP accuracy points against fp32 (default 1.0)",
    )
    imp.add_argument(
        "--keep-fp32", action="store_true", help="publish the fp32 file (marked so in the manifest)"
    )
    imp.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow Lambda layers (serialized Python code that loading runs): only for files you trust",
    )
    imp.add_argument(
        "--custom-objects", nargs="*", default=(), metavar="module:Name", help="custom Keras classes to load"
    )
    imp.add_argument("--latency-runs", type=int, default=30)
    _add_common(imp, calibration_images=300, presets=presets, method_flag="--calibration-method")


def _add_common(
    parser: argparse.ArgumentParser,
    calibration_images: int,
    presets: dict[str, Any],
    method_flag: str = "--calibration",
) -> None:
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
        method_flag,
        dest="calibration",
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
    if args.command == "import":
        return _import_recipe(args)
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


def _import_recipe(args: argparse.Namespace) -> Recipe:
    from .importer import (
        ImportRecipe,
        ImportRefused,
        default_quantization,
        parse_floats,
        parse_labels,
        parse_scale,
    )

    size = None
    if args.input_size:
        try:
            height, width = (int(v) for v in args.input_size.split(","))
        except ValueError:
            raise ImportRefused(f"--input-size {args.input_size!r}: expected H,W such as 224,224") from None
        size = (height, width)
    return ImportRecipe(
        model_path=args.model,
        name=args.name or "",
        version=args.version,
        labels=parse_labels(args.labels) if args.labels else None,
        preprocessing_kind=args.preprocessing,
        preset=args.preset,
        scale=parse_scale(args.scale) if args.scale is not None else None,
        mean=parse_floats(args.mean, "--mean") if args.mean is not None else None,
        std=parse_floats(args.std, "--std") if args.std is not None else None,
        channel_order=args.channel_order,
        resize_shorter=args.resize_shorter,
        resample=args.resample,
        layout=args.layout,
        input_size=size,
        output_kind=args.output_kind,
        calibration_dir=args.calibration_dir,
        evaluation_dir=args.evaluation,
        calibration_count=args.calibration_images,
        max_accuracy_drop=args.max_accuracy_drop,
        keep_fp32=args.keep_fp32,
        trust_code=args.trust_model_code,
        custom_objects=tuple(args.custom_objects or ()),
        latency_runs=args.latency_runs,
        quantization=_quantization(default_quantization(), args),
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
    if args.command == "import":
        return _main_import(args)
    from . import artifacts, pipeline

    recipe = recipe_from(args)
    build_dir = pipeline.build(recipe, args.out or DEFAULT_BUILD_DIR / recipe.name)
    if args.publish:
        print(f"published to {artifacts.publish(build_dir, args.publish, recipe.name)}")
    return 0


def _main_import(args: argparse.Namespace) -> int:
    """``import``: build, then publish only when int8 kept its accuracy (or ``--keep-fp32``)."""
    import sys

    from . import artifacts, pipeline
    from .importer import ImportRefused, accuracy_verdict
    from .model_files import ModelFileError

    try:
        recipe = recipe_from(args)
        build_dir = pipeline.build(recipe, args.out or DEFAULT_BUILD_DIR / recipe.name)
    except (ImportRefused, ModelFileError) as error:
        print(f"python -m convert import: error: {error}", file=sys.stderr)
        return 2
    manifest = (build_dir / "manifest.json").read_text()
    from service.manifest import Manifest

    verdict = accuracy_verdict(Manifest.model_validate_json(manifest).metrics, args.max_accuracy_drop)
    print(f"[{recipe.name}] {verdict.sentence} Report: {build_dir / 'report.md'}", flush=True)
    if not verdict.ok and not args.keep_fp32:
        print(f"python -m convert import: refused: {verdict.sentence}", file=sys.stderr)
        return 1
    if args.publish:
        print(f"published to {artifacts.publish(build_dir, args.publish, recipe.name)}")
    return 0
