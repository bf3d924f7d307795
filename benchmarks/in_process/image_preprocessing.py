"""The general ``image`` preprocessing against the ImageNet path it replaced, side by side.

"Before" is ``service/images/preprocessing/imagenet.py`` as of 0d3d7b4 (copied below as ``_before``):
resize + crop with Pillow, an 8-bit -> float32 copy, the mode's formula in two or three numpy
expressions, an ``astype`` copy, then (NCHW models) a transposed copy in ``preprocess``. "After"
is ``service.images.preprocessing.preprocess`` of an ``imagenet`` manifest (served as its ``image``
case) and of the same preprocessing written as an ``image`` manifest. Calls are interleaved one
by one on the same decoded photos (as the service decodes them), so load on a shared machine
hits both alike. Times: wall-clock ms per image, p50 / p90, for the whole preprocessing (resize
included) and for the normalisation alone (a 224 x 224 RGB image already resized).

Command:
``nice -n 10 .venv/bin/python -m benchmarks.in_process.image_preprocessing [--runs 200] [--out FILE]``
"""

from __future__ import annotations

# isort: off
import service  # noqa: F401 - before numpy, as in the server: sets OPENBLAS_NUM_THREADS
# isort: on

import argparse
import os
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from benchmarks.output import emit
from service.images.decode import decode_image
from service.images.preprocessing import decode_min_side, preprocess
from service.images.preprocessing.color import rgb_image
from service.images.preprocessing.image import resize_and_crop
from service.manifest import IMAGE_PRESETS, ImageNetPreprocessing, Manifest
from tests.harness.paths import CATS_DOGS_DIR, IMAGENET_VAL

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_TORCH_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_PRESET = {"tf": "keras-tf", "caffe": "keras-caffe", "torch": "torch"}
WARMUP = 20
Mode = Literal["tf", "caffe", "torch"]
CASES: list[tuple[Mode, str]] = [("tf", "NHWC"), ("caffe", "NHWC"), ("torch", "NHWC"), ("torch", "NCHW")]


def _before_normalise(rgb: np.ndarray, mode: str) -> np.ndarray:
    """0d3d7b4's ``imagenet.normalise``."""
    if mode == "tf":
        return rgb / 127.5 - 1.0
    if mode == "caffe":
        return rgb[..., ::-1] - _CAFFE_MEAN_BGR
    return (rgb / 255.0 - _TORCH_MEAN_RGB) / _TORCH_STD_RGB


def _before(image: Image.Image, spec: ImageNetPreprocessing, layout: str) -> np.ndarray:
    """0d3d7b4's ``imagenet_tensor`` and ``preprocess``'s batch / layout steps."""
    rgb = resize_and_crop(rgb_image(image), (224, 224), spec.resize_shorter, spec.resample)
    hwc = _before_normalise(np.asarray(rgb, dtype=np.float32), spec.mode).astype(np.float32)
    batch = hwc[np.newaxis]
    if layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)


def _manifest(preprocessing: dict, layout: str) -> Manifest:
    shape = [None, 224, 224, 3] if layout == "NHWC" else [None, 3, 224, 224]
    return Manifest.model_validate(
        {
            "name": "bench",
            "version": "0",
            "file": "m.onnx",
            "sha256": "0" * 64,
            "size_bytes": 1,
            "labels": [str(i) for i in range(1000)],
            "input": {"name": "image", "shape": shape, "layout": layout},
            "output": {"name": "probabilities", "kind": "softmax"},
            "preprocessing": preprocessing,
            "weights": "pretrained",
        }
    )


def _photos(count: int, min_side: int) -> list[Image.Image]:
    files = (
        sorted(IMAGENET_VAL.glob("*.JPEG"))[: count // 2]
        + sorted((CATS_DOGS_DIR / "dogs").glob("*.jpg"))[: count - count // 2]
    )
    return [decode_image(path.read_bytes(), 50_000_000, min_side) for path in files]


def _interleaved(functions: dict[str, Callable[[Image.Image], np.ndarray]], images: list, runs: int) -> dict:
    times: dict[str, list[float]] = {name: [] for name in functions}
    for i in range(WARMUP):  # first calls page in buffers and code: not what a warm server pays
        for function in functions.values():
            function(images[i % len(images)])
    for i in range(runs):
        image = images[i % len(images)]
        for name, function in functions.items():
            started = time.perf_counter()
            function(image)
            times[name].append((time.perf_counter() - started) * 1e3)
    return {
        name: {"p50_ms": round(float(np.median(v)), 4), "p90_ms": round(float(np.percentile(v, 90)), 4)}
        for name, v in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed calls per implementation and case")
    parser.add_argument("--photos", type=int, default=40, help="real photos cycled through")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()

    result: dict = {"cpu": _cpu(), "load_average_1min": round(os.getloadavg()[0], 1), "runs": args.runs}
    for mode, layout in CASES:
        old_spec = ImageNetPreprocessing(mode=mode)
        old_manifest = _manifest(old_spec.model_dump(), layout)
        new_manifest = _manifest({"kind": "image", **IMAGE_PRESETS[_PRESET[mode]]}, layout)
        images = _photos(args.photos, decode_min_side(new_manifest))
        for image in images[:3]:  # same numbers, or the timing compares different work
            reference = _before(image, old_spec, layout)
            for manifest in (old_manifest, new_manifest):
                np.testing.assert_allclose(preprocess(image, manifest), reference, rtol=0, atol=1e-4)
        resized = [resize_and_crop(rgb_image(image), (224, 224), None, "bilinear") for image in images]
        whole = _interleaved(
            {
                "before (0d3d7b4 imagenet)": partial(_before, spec=old_spec, layout=layout),
                "after, imagenet manifest": partial(preprocess, manifest=old_manifest),
                "after, image manifest": partial(preprocess, manifest=new_manifest),
            },
            images,
            args.runs,
        )
        normalise_only = _interleaved(
            {
                "before (0d3d7b4 imagenet)": partial(_before, spec=old_spec, layout=layout),
                "after, image manifest": partial(preprocess, manifest=new_manifest),
            },
            resized,
            args.runs,
        )
        result[f"{mode} {layout}"] = {
            "whole_preprocessing": whole,
            "normalisation_of_a_224px_image": normalise_only,
        }
        base, new = normalise_only["before (0d3d7b4 imagenet)"], normalise_only["after, image manifest"]
        print(
            f"{mode} {layout}: whole p50 {whole['before (0d3d7b4 imagenet)']['p50_ms']:.3f} -> "
            f"{whole['after, image manifest']['p50_ms']:.3f} ms; normalisation p50 {base['p50_ms']:.3f} -> "
            f"{new['p50_ms']:.3f} ms",
            flush=True,
        )
    emit(result, args.out)


def _cpu() -> str:
    model, flags = platform.processor() or "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile") if f in flags]
    return f"{model} ({os.cpu_count()} CPUs; {' '.join(isa)})"


if __name__ == "__main__":
    main()
