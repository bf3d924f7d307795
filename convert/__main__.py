"""Command line: ``python -m convert mnist [--data PATH] [--out DIR] [--publish DIR] ...``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from service.config import DEFAULT_MODEL_DIR, PROJECT_ROOT

from . import seed_cli

DEFAULT_BUILD_DIR = PROJECT_ROOT / "build" / "models"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def _existing_or_none(path: Path) -> Path | None:
    return path if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    mnist = commands.add_parser("mnist", help="train the digit CNN and convert it to int8 ONNX")
    mnist.add_argument(
        "--data",
        type=Path,
        default=_existing_or_none(SHARED_DATA / "mnist" / "mnist.npz"),
        help="mnist.npz in the keras.datasets layout (default: ../shared/data/mnist/mnist.npz "
        "if present, else download with keras.datasets.mnist.load_data())",
    )
    mnist.add_argument("--out", type=Path, default=DEFAULT_BUILD_DIR / "mnist")
    mnist.add_argument("--publish", type=Path, default=None, metavar="MODEL_DIR",
                       help=f"copy the int8 model + manifest into MODEL_DIR/mnist (e.g. {DEFAULT_MODEL_DIR})")
    mnist.add_argument("--epochs", type=int, default=10)
    mnist.add_argument("--train-limit", type=int, default=0, help="first N training images (0 = all)")
    mnist.add_argument("--test-limit", type=int, default=0, help="first N test images (0 = all)")
    mnist.add_argument("--calibration-images", type=int, default=1024)
    mnist.add_argument("--seed", type=int, default=1234)
    mnist.add_argument("--version", default="1.0.0")
    seed_cli.add_parsers(commands)  # keras-app, cats-vs-dogs

    args = parser.parse_args(argv)
    if args.command in seed_cli.COMMANDS:
        seed_cli.run(args)
    if args.command == "mnist":
        from . import artifacts
        from . import mnist as mnist_model

        build_dir = mnist_model.build(
            mnist_model.MnistOptions(
                data=args.data,
                out=args.out,
                epochs=args.epochs,
                train_limit=args.train_limit,
                test_limit=args.test_limit,
                calibration_images=args.calibration_images,
                seed=args.seed,
                version=args.version,
            )
        )
        if args.publish:
            print(f"published to {artifacts.publish(build_dir, args.publish, mnist_model.NAME)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
