"""Sub-commands for the seed models: ``keras-app`` (any keras.applications classifier) and
``cats-vs-dogs`` (the MobileNetV2 transfer model). Registered by ``convert/__main__.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from service.config import DEFAULT_MODEL_DIR, PROJECT_ROOT

from .imagenet_data import IMAGENET_DIR, SHARED_DATA

DEFAULT_BUILD_DIR = PROJECT_ROOT / "build" / "models"
BACKBONE_H5 = SHARED_DATA / "keras_weights" / "mobilenet_v2_1.0_224_no_top.h5"
CATS_VS_DOGS_DIR = SHARED_DATA / "cats_vs_dogs"
COMMANDS = ("keras-app", "cats-vs-dogs")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add the ``keras-app`` and ``cats-vs-dogs`` sub-commands to ``python -m convert``."""
    from .keras_apps import ARCHITECTURES

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
    app.add_argument("--out", type=Path, default=None, help="build dir (default: build/models/NAME)")
    app.add_argument("--val-dir", type=Path, default=IMAGENET_DIR / "val")
    app.add_argument("--calib-dir", type=Path, default=IMAGENET_DIR / "calib")
    app.add_argument("--eval-images", type=int, default=0, help="validation images used (0 = all)")
    app.add_argument("--latency-runs", type=int, default=30)
    _add_common(app, calibration_images=1000)

    cvd = commands.add_parser(
        "cats-vs-dogs",
        help="train the MobileNetV2 cats-vs-dogs transfer model and convert it to int8 ONNX",
        description="MobileNetV2 ImageNet backbone + one sigmoid output, trained on a "
        "directory-per-class image folder (first class = 0, second = 1, sorted by name).",
    )
    cvd.add_argument(
        "--data", type=Path, default=CATS_VS_DOGS_DIR, help="folder with one sub-folder per class"
    )
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
    cvd.add_argument("--out", type=Path, default=None)
    cvd.add_argument("--validation-fraction", type=float, default=0.4)
    cvd.add_argument("--per-class-limit", type=int, default=0, help="first N images per class (0 = all)")
    cvd.add_argument("--epochs", type=int, default=30, help="head training epochs")
    cvd.add_argument("--fine-tune-blocks", type=int, default=0, help="also fine-tune the top N blocks")
    cvd.add_argument("--fine-tune-epochs", type=int, default=2)
    cvd.add_argument("--latency-runs", type=int, default=30)
    _add_common(cvd, calibration_images=300)


def _add_common(parser: argparse.ArgumentParser, calibration_images: int) -> None:
    parser.add_argument(
        "--publish",
        type=Path,
        default=None,
        metavar="MODEL_DIR",
        help=f"copy the int8 model + manifest into MODEL_DIR/NAME (e.g. {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument("--calibration-images", type=int, default=calibration_images)
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
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (non-VNNI CPUs)")
    parser.add_argument(
        "--exclude-nodes", nargs="*", default=None, metavar="NAME", help="ONNX node names kept in float32"
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--version", default="1.0.0")


def run(args: argparse.Namespace) -> None:
    """Run the parsed ``keras-app`` or ``cats-vs-dogs`` command."""
    from . import artifacts

    if args.command == "keras-app":
        from .keras_apps import KerasAppOptions, build, default_quantization

        options = KerasAppOptions(
            architecture=args.architecture,
            weights=args.weights,
            out=Path(),
            name=args.name,
            alpha=args.alpha,
            version=args.version,
            val_dir=args.val_dir,
            calib_dir=args.calib_dir,
            eval_images=args.eval_images,
            calibration_images=args.calibration_images,
            latency_runs=args.latency_runs,
            seed=args.seed,
        )
        name = options.model_name
        quantization = _override(default_quantization(args.architecture), args)
        from dataclasses import replace

        options = replace(options, out=args.out or DEFAULT_BUILD_DIR / name, quantization=quantization)
        build_dir = build(options)
    else:
        from . import cats_vs_dogs

        name = args.name
        options = cats_vs_dogs.CatsDogsOptions(
            data=args.data,
            backbone_weights=args.backbone_weights,
            out=args.out or DEFAULT_BUILD_DIR / name,
            name=name,
            labels=_labels(args),
            validation_fraction=args.validation_fraction,
            per_class_limit=args.per_class_limit,
            epochs=args.epochs,
            fine_tune_blocks=args.fine_tune_blocks,
            fine_tune_epochs=args.fine_tune_epochs,
            calibration_images=args.calibration_images,
            latency_runs=args.latency_runs,
            quantization=_override(cats_vs_dogs.DEFAULT_QUANTIZATION, args),
            seed=args.seed,
            version=args.version,
        )
        build_dir = cats_vs_dogs.build(options)
    if args.publish:
        print(f"published to {artifacts.publish(build_dir, args.publish, name)}")


def _labels(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.labels:
        return tuple(args.labels)
    # The bundled folders are plural (cats/, dogs/); the classic responses say "cat" / "dog".
    return ("cat", "dog") if args.data.resolve() == CATS_VS_DOGS_DIR.resolve() else None


def _override(config, args: argparse.Namespace):
    """``config`` with the command line's explicit quantization choices applied."""
    from dataclasses import replace

    changes = {}
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
