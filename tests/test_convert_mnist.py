"""The conversion pipeline end to end on a small slice: train, export, quantize, validate."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from convert.cpu import cpu_info
from convert.mnist import AUGMENTATIONS, DEFAULT_AUGMENTATION, KERAS_LAYERS_AUGMENTATION
from service.engine.registry import load_registry
from service.manifest import Manifest, sha256_of

from .support import MNIST_NPZ, PROJECT_ROOT, encode, mnist_test_digits

pytestmark = pytest.mark.shared_data  # real photos or digits from ../shared/data


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    """Run the real command line on 4,000 training and 1,000 test digits."""
    out = tmp_path_factory.mktemp("mnist_build")
    published = tmp_path_factory.mktemp("models")
    command = [
        sys.executable, "-m", "convert", "mnist",
        "--data", str(MNIST_NPZ), "--out", str(out), "--publish", str(published),
        "--train-limit", "4000", "--test-limit", "1000", "--epochs", "3",
        "--calibration-images", "200",  # 6 batches of 32 are used
    ]  # fmt: skip
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, published, result.stdout


def test_build_writes_every_artifact(quick_build):
    out, published, stdout = quick_build
    for name in ("mnist.keras", "mnist.fp32.onnx", "mnist.int8.onnx", "manifest.json", "report.md"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (published / "mnist").iterdir()) == [
        "manifest.json",
        "mnist.int8.onnx",
        "report.md",
    ]
    assert "[mnist] training on 4000 images" in stdout


def test_onnx_graph_has_dynamic_batch_opset_and_qdq(quick_build):
    out, _, _ = quick_build
    fp32 = onnx.load(out / "mnist.fp32.onnx")
    assert max(o.version for o in fp32.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert fp32.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    int8 = onnx.load(out / "mnist.int8.onnx")
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("QuantizeLinear") >= 4 and ops.count("DequantizeLinear") >= 7
    assert "Softmax" in ops  # kept in float, so probabilities are not rounded to 1/256
    assert (out / "mnist.int8.onnx").stat().st_size < 0.4 * (out / "mnist.fp32.onnx").stat().st_size


def test_manifest_records_parity_accuracy_and_provenance(quick_build):
    out, _, _ = quick_build
    manifest = Manifest.model_validate_json((out / "manifest.json").read_text())
    assert manifest.sha256 == sha256_of(out / "mnist.int8.onnx")
    metrics = manifest.metrics
    assert metrics["test_images"] == 1000
    assert metrics["max_abs_delta_prob_keras_vs_onnx_fp32"] <= 1e-4
    assert metrics["accuracy_keras_fp32"] == pytest.approx(metrics["accuracy_onnx_fp32"], abs=0.002)
    # Chance is 0.1; three short epochs on 4,000 digits land far above it.
    assert metrics["accuracy_onnx_int8"] >= 0.8
    assert abs(metrics["accuracy_onnx_int8"] - metrics["accuracy_keras_fp32"]) <= 0.02
    assert manifest.quantization["format"] == "QDQ" and manifest.quantization["calibration_images"] == 192
    assert {"tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime"} <= set(manifest.tools)
    # Where the numbers were measured, and how the model was trained, travel with it.
    assert manifest.quantization["measured_on"] == cpu_info()
    augmentation = AUGMENTATIONS[DEFAULT_AUGMENTATION]()  # the command line's default
    expected = augmentation.description if augmentation else KERAS_LAYERS_AUGMENTATION
    assert metrics["training"]["augmentation"] == expected
    raw = json.loads((out / "manifest.json").read_text())
    assert list(raw) == list(Manifest.model_fields)  # every field written, in the model's order
    report = (out / "report.md").read_text()
    assert "## Training" in report and "## CPU the numbers were measured on" in report
    assert f"| accuracy | {metrics['accuracy_keras_fp32']:.4f} |" in report


def test_published_model_serves_through_the_registry(quick_build):
    from PIL import Image

    from service.engine.pipeline import EncodedImages, classify

    _, published, _ = quick_build
    registry = load_registry(published, intra_op_threads=1)
    assert list(registry.ready) == ["mnist"] and not registry.unavailable
    images, labels = mnist_test_digits(200)
    model = registry.ready["mnist"]
    files = EncodedImages([encode(Image.fromarray(img)) for img in images])
    outcomes = classify(model, files, 1, max_pixels=10**6).outcomes
    hits = sum(o.ranking[0].class_index == label for o, label in zip(outcomes, labels, strict=True))
    assert hits / len(labels) >= 0.8


def test_augmentation_hook_transforms_every_training_batch():
    """A recipe's numpy augmentation runs on each shuffled batch, with the build's seeded rng."""
    import tensorflow as tf

    from convert.mnist import DigitRecipe, _batch_augmentation
    from convert.recipe import Augmentation

    seen: list[int] = []

    def invert(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append(int(rng.integers(1 << 30)))
        return 1.0 - batch

    recipe = DigitRecipe(data=None, seed=7, augment=Augmentation("invert ink", invert))
    images = np.zeros((10, 28, 28, 1), np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(10))).batch(4)
    batches = list(dataset.map(_batch_augmentation(recipe)).as_numpy_iterator())
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    assert all(x.shape[1:] == (28, 28, 1) and np.all(x == 1.0) for x, _ in batches)
    expected = np.random.default_rng(7)
    assert seen == [int(expected.integers(1 << 30)) for _ in range(3)]
