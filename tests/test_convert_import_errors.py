"""Bad input to ``python -m convert import``: one test per problem. Each is refused by the real
CLI with exit status 2 and one line on stderr naming the problem, and nothing appears in the
``--publish`` folder. Models that must load to be judged (two inputs, dynamic size, 2 channels,
label counts, ``Lambda`` layers) are tiny real Keras models written here in each format.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .support import PROJECT_ROOT, SHARED_DATA

pytestmark = pytest.mark.shared_data  # real photos from ../shared/data
keras = pytest.importorskip("keras")

PHOTOS = SHARED_DATA / "cats_vs_dogs"
PREFIX = "python -m convert import: error: "


def refused(model: Path, *flags: str, tmp: Path) -> str:
    """Run the CLI on bad input; assert exit 2, one error line, an empty publish folder; return it."""
    publish = tmp / "published"
    done = subprocess.run(
        [sys.executable, "-m", "convert", "import", str(model), *flags, "--out", str(tmp / "build")]
        + ["--publish", str(publish)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith(PREFIX)]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1, done.stderr[-2000:]
    assert not publish.exists() or not any(publish.iterdir())
    return errors[0].removeprefix(PREFIX)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Calibration and evaluation folders of real photos (symlinks), and an image-less folder."""
    root = tmp_path_factory.mktemp("folders")
    for split, start in (("calibration", 0), ("evaluation", 20)):
        for cls in ("cats", "dogs"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for path in sorted((PHOTOS / cls).glob("*.jpg"))[start : start + 6]:
                (folder / path.name).symlink_to(path)
    (root / "empty").mkdir()
    (root / "no_images" / "sub").mkdir(parents=True)
    (root / "no_images" / "sub" / "notes.txt").write_text("not an image")
    return {name: root / name for name in ("calibration", "evaluation", "empty", "no_images")}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny real models, each with one thing the importer must refuse (and one good one)."""
    root = tmp_path_factory.mktemp("models")
    layers = keras.layers

    def small(shape, units=2, name="good"):
        return keras.Sequential(
            [
                keras.Input(shape),
                layers.Conv2D(4, 3),
                layers.GlobalAveragePooling2D(),
                layers.Dense(units, activation="softmax"),
            ],
            name=name,
        )

    small((32, 32, 3)).save(root / "good.keras")
    small((None, None, 3)).save(root / "dynamic.keras")
    small((32, 32, 2)).save(root / "two_channels.keras")
    a, b = keras.Input((32, 32, 3), name="photo"), keras.Input((4,), name="metadata")
    joined = layers.Concatenate()([layers.GlobalAveragePooling2D()(a), b])
    keras.Model([a, b], layers.Dense(2, activation="softmax")(joined)).save(root / "two_inputs.keras")
    lam = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Lambda(lambda x: x * 2.0, name="times_two"),
            layers.Flatten(),
            layers.Dense(2),
        ]
    )
    lam.save(root / "lambda.keras")
    lam.save(root / "lambda.h5")
    (root / "random.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "random.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "model.pt").write_bytes(b"PK\x03\x04 a torch pickle")
    return {p.stem if p.suffix != ".h5" else f"{p.stem}_h5": p for p in root.iterdir()} | {
        "random_onnx": root / "random.onnx"
    }


def _good_flags(folders, *extra: str) -> tuple[str, ...]:
    return ("--scale", "1/255", "--calibration", str(folders["calibration"]), *extra)


def test_a_file_that_is_not_a_model(tmp_path, models, folders):
    message = refused(models["random_h5"], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "random.h5: not an HDF5 file" in message
    message = refused(models["random_onnx"], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "random.onnx: not an ONNX model" in message


def test_an_unsupported_format(tmp_path, models, folders):
    message = refused(models["model"], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert ".pt files are not supported" in message and "torch.onnx.export" in message


def test_a_missing_file(tmp_path, folders):
    message = refused(tmp_path / "nowhere.keras", *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "nowhere.keras: no such file or directory" in message


def test_a_model_with_two_inputs(tmp_path, models, folders):
    message = refused(models["two_inputs"], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "2 inputs" in message and "photo" in message and "metadata" in message


def test_dynamic_height_and_width_need_input_size(tmp_path, models, folders):
    message = refused(models["dynamic"], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "dynamic height/width: pass --input-size H,W" in message


def test_two_channels(tmp_path, models, folders):
    message = refused(models["two_channels"], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "has 2 channels" in message and "1 (grey) or 3 (colour)" in message


def test_an_empty_calibration_folder(tmp_path, models, folders):
    flags = ("--scale", "1/255", "--labels", "a,b", "--calibration", str(folders["empty"]))
    assert "no images found" in refused(models["good"], *flags, tmp=tmp_path)


def test_a_calibration_folder_without_images(tmp_path, models, folders):
    flags = ("--scale", "1/255", "--labels", "a,b", "--calibration", str(folders["no_images"]))
    message = refused(models["good"], *flags, tmp=tmp_path)
    assert f"--calibration {folders['no_images']}: no images found" in message


def test_int8_without_calibration_images_says_how_to_give_them(tmp_path, models):
    message = refused(models["good"], "--scale", "1/255", "--labels", "a,b", tmp=tmp_path)
    assert "int8 needs real calibration images: pass --calibration DIR" in message


def test_labels_that_do_not_match_the_output(tmp_path, models, folders):
    message = refused(models["good"], *_good_flags(folders, "--labels", "cat,dog,bird"), tmp=tmp_path)
    assert "3 labels" in message and "2 output units" in message


def test_evaluation_classes_that_do_not_match_the_labels(tmp_path, models, folders):
    flags = _good_flags(folders, "--labels", "apple,pear", "--evaluation", str(folders["evaluation"]))
    message = refused(models["good"], *flags, tmp=tmp_path)
    assert "class folder 'cats' matches none of the labels [apple, pear]" in message


def test_no_labels_at_all(tmp_path, models, folders):
    assert "no labels" in refused(models["good"], *_good_flags(folders), tmp=tmp_path)


def test_pixel_scaling_must_be_stated(tmp_path, models, folders):
    flags = ("--labels", "a,b", "--calibration", str(folders["calibration"]))
    assert "say how pixels were scaled in training" in refused(models["good"], *flags, tmp=tmp_path)


@pytest.mark.parametrize("key", ["lambda", "lambda_h5"])
def test_lambda_layers_are_refused_naming_the_layer_and_the_flag(tmp_path, models, folders, key):
    """A Lambda layer's serialized bytecode would run at load: refused before anything loads."""
    message = refused(models[key], *_good_flags(folders, "--labels", "a,b"), tmp=tmp_path)
    assert "Lambda layer 'times_two'" in message and "--trust-model-code" in message


def test_an_unreadable_image_in_calibration_names_the_file(tmp_path, models, folders):
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    Image.new("RGB", (40, 40), "gray").save(calibration / "fine.png")
    (calibration / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    flags = ("--scale", "1/255", "--labels", "a,b", "--calibration", str(calibration))
    message = refused(models["good"], *flags, tmp=tmp_path)
    assert "broken.jpg: cannot be decoded as an image" in message


def test_a_name_the_manifest_cannot_hold(tmp_path, models, folders):
    message = refused(
        models["good"], *_good_flags(folders, "--labels", "a,b", "--name", "My Model"), tmp=tmp_path
    )
    assert "--name 'My Model'" in message
