"""``python -m convert import MODEL``: a user's own trained model -> int8 ONNX, proven on their data.

The recipe (``ImportRecipe``) answers the pipeline's questions from the user's file and flags:

- the model: ``convert.model_files.open_model`` (``.keras``, ``.h5``, SavedModel, ``.onnx``);
- the input: shape, channels and layout read from the model (NCHW vs NHWC inferred when only one
  reading has 1 or 3 channels, ``--layout`` otherwise; dynamic H / W need ``--input-size``);
- the output: one unit with a sigmoid -> ``sigmoid``; a single unit without one (a logit) gets a
  Sigmoid appended; rows that are probabilities -> ``softmax``; otherwise ``logits``;
- labels: ``--labels``, else the sorted sub-folders of ``--evaluation``; the count must match;
- preprocessing: the manifest's ``image`` kind from ``--scale`` / ``--mean`` / ``--std`` /
  ``--channel-order`` / ``--resize-shorter`` / ``--preset``, or ``mnist_digit``;
- calibration: images found recursively in ``--calibration DIR`` (seeded sample), preprocessed
  exactly as served (``service.images.preprocessing.model_input``); no images, no int8;
- proof: with ``--evaluation DIR`` (one sub-folder per class), accuracy of the user's model, our
  fp32 export and the int8 file, per class, their agreement, and a contact sheet of the images
  where int8 and fp32 disagree (``disagreements.png``); ``accuracy_verdict`` says whether int8
  stays within ``--max-accuracy-drop`` points of fp32 (the CLI publishes nothing otherwise).

Every problem with the user's input is an ``ImportRefused`` with a one-line message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from service.engine.inference import class_probabilities
from service.manifest import (
    IMAGE_PRESETS,
    ImagePreprocessing,
    MnistDigitPreprocessing,
    Resample,
    TensorSpec,
)

from .model_files import ModelFileError, SourceModel, open_model
from .onnx_export import INPUT_NAME
from .quantize import QuantizationConfig
from .recipe import MetricGroup, ModelCard, Obtained, OutputKind, Preprocessing, Recipe

OUTPUT_NAME = "scores"
SHEET = "disagreements.png"
MAX_SHEET_IMAGES = 48
# Rows within this of 1 (and all >= 0) are probabilities: a float32 softmax sums to 1 +- 1e-6;
# 1e-3 also admits a softmax computed in float16.
PROBABILITY_SUM_TOLERANCE = 1e-3
# How many calibration images probe the output kind of a model whose file does not say it.
PROBE_IMAGES = 64


class ImportRefused(ValueError):
    """The user's input cannot be converted as given; the message says why in one line."""


def default_quantization() -> QuantizationConfig:
    """The project's int8 format (``keras_apps.default_quantization``: U8S8 per-channel QDQ,
    7-bit weights, bias correction, min-max calibration), with Softmax and Sigmoid in float so
    the confidence is not rounded to 1/256 steps."""
    return QuantizationConfig.x86_u8s8_reduced(
        calibration="minmax", bias_correction=True, op_types_excluded=("Softmax", "Sigmoid")
    )


def parse_scale(text: str) -> float:
    """``"1/255"``, ``"0.00392"`` or ``"1"`` -> a float > 0.

    Raises:
        ImportRefused: not a positive number or fraction.
    """
    try:
        numerator, _, denominator = text.partition("/")
        value = float(numerator) / float(denominator) if denominator else float(numerator)
    except (ValueError, ZeroDivisionError):
        raise ImportRefused(f"--scale {text!r}: expected a number or a fraction such as 1/255") from None
    if not value > 0:
        raise ImportRefused(f"--scale {text!r}: must be > 0")
    return value


def parse_floats(text: str, flag: str) -> tuple[float, ...]:
    """``"0.485,0.456,0.406"`` -> floats (1 or 3 of them)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ImportRefused(f"{flag} {text!r}: expected 1 or 3 comma-separated numbers") from None
    if len(values) not in (1, 3):
        raise ImportRefused(f"{flag} {text!r}: expected 1 or 3 comma-separated numbers, got {len(values)}")
    return values


def parse_labels(text: str) -> list[str]:
    """``--labels``: ``a,b,c``, or a file with one label per line, or a JSON list."""
    path = Path(text)
    if path.is_file():
        content = path.read_text(encoding="utf-8").strip()
        if content.startswith("["):
            try:
                labels = [str(v) for v in json.loads(content)]
            except json.JSONDecodeError as error:
                raise ImportRefused(f"--labels {path}: not a JSON list ({error})") from None
        else:
            labels = [line.strip() for line in content.splitlines() if line.strip()]
    else:
        labels = [v.strip() for v in text.split(",") if v.strip()]
    if len(labels) < 2:
        raise ImportRefused(f"--labels {text!r}: need at least 2 labels, got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise ImportRefused(f"--labels {text!r}: labels repeat")
    return labels


def find_images(directory: Path) -> list[Path]:
    """Every file under ``directory`` (recursively) with an image suffix the service decodes,
    sorted."""
    from service.cli.files import IMAGE_SUFFIXES

    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(directory: Path) -> tuple[list[str], list[list[Path]]]:
    """(sub-folder names sorted by name, the images of each): the class order of
    ``keras.utils.image_dataset_from_directory`` and torchvision's ``ImageFolder``."""
    if not directory.is_dir():
        raise ImportRefused(f"--evaluation {directory}: no such directory")
    names = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise ImportRefused(f"--evaluation {directory}: needs one sub-folder per class, found {len(names)}")
    images = [find_images(directory / name) for name in names]
    empty = [n for n, found in zip(names, images, strict=True) if not found]
    if empty:
        raise ImportRefused(f"--evaluation {directory}: class folder {empty[0]!r} has no images")
    return names, images


@dataclass
class ImportRecipe(Recipe):
    """A user's model file (see the module docstring). Arguments mirror the CLI flags."""

    model_path: Path
    name: str = ""
    version: str = "1.0.0"
    labels: list[str] | None = None
    preprocessing_kind: Literal["image", "mnist_digit"] = "image"
    preset: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: Literal["RGB", "BGR"] | None = None
    resize_shorter: int | None = None
    resample: Resample = "bilinear"
    layout: Literal["NHWC", "NCHW"] | None = None
    input_size: tuple[int, int] | None = None
    output_kind: OutputKind | None = None
    calibration_dir: Path | None = None
    evaluation_dir: Path | None = None
    calibration_count: int = 300
    max_accuracy_drop: float = 1.0
    keep_fp32: bool = False
    trust_code: bool = False
    custom_objects: tuple[str, ...] = ()
    latency_runs: int = 30
    quantization: QuantizationConfig = field(default_factory=default_quantization)
    seed: int = 1234
    save_keras: bool = False
    source_key: str = "source"

    def __post_init__(self) -> None:
        self.name = self.name or model_name(self.model_path)
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", self.name):
            raise ImportRefused(
                f"--name {self.name!r}: use 1-64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"
            )
        self.spec: Preprocessing = self._preprocessing()
        if self.calibration_dir is None:
            raise ImportRefused(
                "int8 needs real calibration images: pass --calibration DIR, a folder of images like "
                "those the model will see (e.g. some of its training images; searched recursively)"
            )
        if not self.calibration_dir.is_dir():
            raise ImportRefused(f"--calibration {self.calibration_dir}: no such directory")
        self.calibration_paths = find_images(self.calibration_dir)
        if not self.calibration_paths:
            raise ImportRefused(
                f"--calibration {self.calibration_dir}: no images found (searched recursively for "
                ".jpg, .png, .webp, .bmp, .gif, .tif, .heic, .avif ...)"
            )
        self.eval_classes: list[str] = []
        self.eval_paths: list[Path] = []
        self.eval_labels = np.zeros(0, dtype=np.int64)
        if self.evaluation_dir is not None:
            self.eval_classes, per_class = class_folders(self.evaluation_dir)
            if self.labels is None:
                self.labels = list(self.eval_classes)
            indices = self._folder_label_indices()
            for index, paths in zip(indices, per_class, strict=True):
                self.eval_paths += paths
                self.eval_labels = np.concatenate(
                    [self.eval_labels, np.full(len(paths), index, dtype=np.int64)]
                )
        if self.labels is None:
            raise ImportRefused(
                "no labels: pass --labels a,b,... (or a file, one per line), or --evaluation DIR "
                "with one sub-folder per class (sorted names become the labels)"
            )
        self.metric_groups: tuple[MetricGroup, ...] = (
            ("accuracy", "agreement", "latency") if self.evaluation_dir else ("agreement", "latency")
        )
        self.evaluation_count_key = "eval_images" if self.evaluation_dir else "agreement_images"

    def _preprocessing(self) -> Preprocessing:
        if self.preprocessing_kind == "mnist_digit":
            return MnistDigitPreprocessing()
        if self.preset is None and self.scale is None and self.mean is None and self.std is None:
            raise ImportRefused(
                "say how pixels were scaled in training: --scale 1/255 (x / 255), --preset "
                "keras-tf|keras-caffe|torch, --mean/--std, or --scale 1 if the model rescales inside"
            )
        if self.preset is not None and self.preset not in IMAGE_PRESETS:
            raise ImportRefused(f"--preset {self.preset!r}: one of {', '.join(IMAGE_PRESETS)}")
        fields: dict[str, Any] = dict(IMAGE_PRESETS[self.preset]) if self.preset else {}
        for key, value in (("scale", self.scale), ("mean", self.mean), ("std", self.std)):
            if value is not None:
                fields[key] = value
        if self.channel_order:
            fields["channel_order"] = self.channel_order
        try:
            return ImagePreprocessing(resize_shorter=self.resize_shorter, resample=self.resample, **fields)
        except ValueError as error:
            raise ImportRefused(f"preprocessing: {_pydantic_message(error)}") from None

    def _folder_label_indices(self) -> list[int]:
        from service.cli.files import label_for_folder

        assert self.labels is not None
        indices = []
        for folder in self.eval_classes:
            label = label_for_folder(folder, self.labels)
            if label is None:
                raise ImportRefused(
                    f"--evaluation {self.evaluation_dir}: class folder {folder!r} matches none of the "
                    f"labels {_short_list(self.labels)}"
                )
            indices.append(self.labels.index(label))
        return indices

    # -- the model ---------------------------------------------------------------------------

    def obtain(self) -> Obtained:
        print(f"[{self.name}] opening {self.model_path}", flush=True)
        try:
            source = open_model(self.model_path, self.trust_code, self.custom_objects)
        except ModelFileError as error:
            raise ImportRefused(str(error)) from None
        self.source = source
        self.tensor_spec = self._tensor_spec(source)
        self.kind, self.append_sigmoid = self._output_kind(source)
        self._check_label_count(source)
        facts = {
            "source_format": source.format,
            "source_file": self.model_path.name,
            "calibration_dir": str(self.calibration_dir),
            "calibration_images_found": len(self.calibration_paths),
        }
        if self.evaluation_dir:
            facts["evaluation_dir"] = str(self.evaluation_dir)
        if self.append_sigmoid:
            facts["sigmoid_appended"] = "the model's single output unit is a logit; a Sigmoid was appended"
        return Obtained(source, facts=facts)

    def _tensor_spec(self, source: SourceModel) -> TensorSpec:
        shape = source.input_shape
        where = f"{self.model_path.name}: input shape {_show(shape)}"
        if len(shape) != 4:
            raise ImportRefused(f"{where} is not a 4-D image batch (N, H, W, C or N, C, H, W)")
        layout = self.layout or source.layout or _infer_layout(shape, where)
        h, w, c = (shape[1], shape[2], shape[3]) if layout == "NHWC" else (shape[2], shape[3], shape[1])
        if c is None:
            raise ImportRefused(
                f"{where} has a dynamic channel dimension ({layout}); give a model with 1 or 3"
            )
        if c not in (1, 3):
            raise ImportRefused(
                f"{where} has {c} channels ({layout}); image models take 1 (grey) or 3 (colour)"
            )
        if self.input_size is not None:
            for given, stated, axis in ((self.input_size[0], h, "H"), (self.input_size[1], w, "W")):
                if stated is not None and stated != given:
                    raise ImportRefused(
                        f"{where}: --input-size gives {axis} = {given}, the model has {stated}"
                    )
            h, w = self.input_size
        if h is None or w is None:
            raise ImportRefused(f"{where} has a dynamic height/width: pass --input-size H,W")
        if isinstance(self.spec, MnistDigitPreprocessing) and (h, w, c) != (28, 28, 1):
            raise ImportRefused(
                f"{where}: --preprocessing mnist_digit makes 28x28x1, the model takes {h}x{w}x{c}"
            )
        dims = [None, h, w, c] if layout == "NHWC" else [None, c, h, w]
        return TensorSpec(name=INPUT_NAME, shape=dims, dtype="float32", layout=layout)

    def _output_kind(self, source: SourceModel) -> tuple[OutputKind, bool]:
        """(manifest output kind, whether a Sigmoid must be appended to a one-unit logit)."""
        units = source.units or self._probe().shape[1]
        if self.output_kind is not None:
            if self.output_kind == "sigmoid" and units != 1:
                raise ImportRefused(f"--output-kind sigmoid needs one output unit, the model has {units}")
            if units == 1 and self.output_kind == "logits":
                return "sigmoid", True
            return self.output_kind, False
        if units == 1:
            if source.activation == "sigmoid":
                return "sigmoid", False
            probe = self._probe()
            if source.activation == "unknown" and probe.min() >= 0 and probe.max() <= 1:
                return "sigmoid", False
            return "sigmoid", True
        if source.activation == "softmax":
            return "softmax", False
        if source.activation == "unknown":
            probe = self._probe().astype(np.float64)
            if probe.min() >= 0 and np.allclose(probe.sum(axis=1), 1.0, atol=PROBABILITY_SUM_TOLERANCE):
                return "softmax", False
        if source.activation == "other" and source.format == "onnx":
            probe = self._probe().astype(np.float64)
            if probe.min() >= 0 and np.allclose(probe.sum(axis=1), 1.0, atol=PROBABILITY_SUM_TOLERANCE):
                return "softmax", False
        return "logits", False

    def _probe(self) -> np.ndarray:
        return self.source.predict(self._calibration[:PROBE_IMAGES])

    def _check_label_count(self, source: SourceModel) -> None:
        assert self.labels is not None
        units = source.units or self._probe().shape[1]
        needed = 2 if self.kind == "sigmoid" else units
        if len(self.labels) != needed:
            what = "one sigmoid unit needs 2 labels" if self.kind == "sigmoid" else f"{units} output units"
            raise ImportRefused(
                f"{len(self.labels)} labels {_short_list(self.labels)} but the model has {what}"
            )

    # -- the pipeline's hooks ----------------------------------------------------------------

    def input_spec(self, model: Any) -> TensorSpec:
        return self.tensor_spec

    def output_units(self, model: Any) -> int:
        return 1 if self.kind == "sigmoid" else len(self.labels or ())

    def export(self, model: Any, path: Path, input_spec: TensorSpec, output_name: str) -> Path:
        sample = tuple(int(d) for d in input_spec.shape[1:])  # type: ignore[arg-type]
        written = self.source.export(path, sample, output_name)
        if self.append_sigmoid:
            from .onnx_export import append_sigmoid

            append_sigmoid(written)
        return written

    def source_predict(self, model: Any) -> Callable[[np.ndarray], np.ndarray]:
        predict = self.source.predict
        if self.append_sigmoid:
            return lambda batch: 1.0 / (1.0 + np.exp(-predict(batch)))
        return predict

    def source_call(self, model: Any) -> Callable[[np.ndarray], Any]:
        keras_model = self.source.model
        if keras_model is not None:
            return lambda x: np.asarray(keras_model(x, training=False))
        return self.source.predict

    # -- data ----------------------------------------------------------------------------------

    def _tensors(self, paths: list[Path]) -> np.ndarray:
        from service.config import Settings
        from service.images.decode import decode_image
        from service.images.preprocessing import min_side_for, model_input

        max_pixels = Settings.model_fields["max_image_pixels"].default
        min_side = min_side_for(self.spec, self.tensor_spec)  # decoded as the service decodes
        sample = tuple(int(d) for d in self.tensor_spec.shape[1:] if d is not None)
        batch = np.empty((len(paths), *sample), dtype=np.float32)
        for i, path in enumerate(paths):
            try:
                image = decode_image(path.read_bytes(), max_pixels, min_side)
            except Exception as error:  # noqa: BLE001 - the service's decode errors name the problem
                raise ImportRefused(f"{path}: cannot be decoded as an image ({error})") from None
            batch[i] = model_input(image, self.spec, self.tensor_spec)[0]
        return batch

    @cached_property
    def _calibration_chosen(self) -> list[Path]:
        rng = np.random.default_rng(self.seed)
        picked = sorted(rng.permutation(len(self.calibration_paths))[: self.calibration_count])
        return [self.calibration_paths[i] for i in picked]

    @cached_property
    def _calibration(self) -> np.ndarray:
        return self._tensors(self._calibration_chosen)

    def calibration_images(self) -> np.ndarray:
        return self._calibration

    def evaluation_data(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.evaluation_dir:  # agreement only, on the calibration images
            return self._calibration, None  # type: ignore[return-value]
        return self._tensors(self.eval_paths), self.eval_labels

    def card(self, model: Any) -> ModelCard:
        assert self.labels is not None
        return ModelCard(
            description=f"{self.name}: imported from {self.model_path.name} ({self.source.description}), "
            + ("fp32 (--keep-fp32)." if self.keep_fp32 else "int8 QDQ."),
            labels=list(self.labels),
            output_name=OUTPUT_NAME,
            output_kind=self.kind,
            preprocessing=self.spec,
            weights="trained",
        )

    # -- proof -----------------------------------------------------------------------------------

    def review(self, out: Path, outputs: dict[str, np.ndarray], labels: np.ndarray | None) -> dict[str, Any]:
        from .contact_sheet import Tile, write_contact_sheet

        assert self.labels is not None
        scores = {key: class_probabilities(value, self.kind) for key, value in outputs.items()}
        fp32, int8 = scores["onnx_fp32"], scores["onnx_int8"]
        fp32_top, int8_top = fp32.argmax(axis=1), int8.argmax(axis=1)
        disagree = np.flatnonzero(fp32_top != int8_top)
        paths = self.eval_paths if self.evaluation_dir else self._calibration_chosen
        metrics: dict[str, Any] = {
            "disagreements_fp32_vs_int8": int(len(disagree)),
            "disagreement_picture": SHEET,
        }
        if labels is not None:
            for key, value in scores.items():
                top = value.argmax(axis=1)
                metrics[f"per_class_accuracy_{key}"] = {
                    self.labels[c]: round(float(np.mean(top[labels == c] == c)), 4) for c in np.unique(labels)
                }
        tiles = [
            Tile(
                path=paths[i],
                truth=self.labels[int(labels[i])] if labels is not None else None,
                fp32=(self.labels[int(fp32_top[i])], float(fp32[i, fp32_top[i]])),
                int8=(self.labels[int(int8_top[i])], float(int8[i, int8_top[i]])),
            )
            for i in disagree[:MAX_SHEET_IMAGES]
        ]
        where = "evaluation" if self.evaluation_dir else "calibration"
        title = (
            f"{self.name}: int8 and fp32 disagree on {len(disagree)} of {len(fp32_top)} {where} images"
            + (f" (first {MAX_SHEET_IMAGES} shown)" if len(disagree) > MAX_SHEET_IMAGES else "")
        )
        write_contact_sheet(out / SHEET, tiles, title)
        return metrics

    def report_sections(self, metrics: dict[str, Any]) -> dict[str, str]:
        source = f"`{self.model_path.name}` ({self.source.description})"
        lines = [f"Source: {source}, imported with `python -m convert import`."]
        lines.append(f"Preprocessing (as served): `{self.spec.model_dump_json()}`.")
        lines.append(
            f"Calibration: {metrics.get('calibration_images_found')} images found in "
            f"`{self.calibration_dir}`, {min(self.calibration_count, len(self.calibration_paths))} used "
            f"(seed {self.seed})."
        )
        if self.evaluation_dir:
            verdict = accuracy_verdict(metrics, self.max_accuracy_drop)
            lines.append(
                f"Evaluation: {metrics.get('eval_images')} images in `{self.evaluation_dir}` "
                f"(one sub-folder per class). {verdict.sentence}"
            )
            per_class = ["| class | your model | ONNX fp32 | ONNX int8 |", "|---|---|---|---|"]
            keys = [f"per_class_accuracy_{k}" for k in ("source_fp32", "onnx_fp32", "onnx_int8")]
            for label in metrics.get(keys[0], {}):
                per_class.append(
                    f"| {label} | " + " | ".join(f"{metrics[k][label]:.4f}" for k in keys) + " |"
                )
            body = "\n\n".join(lines) + "\n\n" + "\n".join(per_class)
        else:
            lines.append(
                "**Accuracy was not checked**: no `--evaluation DIR` was given. The fp32-vs-int8 "
                f"agreement ({metrics.get('top1_agreement_fp32_vs_int8', 0):.4f}) is measured on the "
                "calibration images."
            )
            body = "\n\n".join(lines)
        picture = (
            f"{metrics.get('disagreements_fp32_vs_int8', 0)} images where int8 and fp32 give different top-1 "
            f"classes, each with both answers:\n\n![int8 vs fp32 disagreements]({SHEET})"
        )
        return {"Your model and your data": body, "Where int8 and fp32 disagree": picture}


@dataclass(frozen=True)
class Verdict:
    """Whether the int8 file may be published: ``ok``, and a sentence saying why."""

    ok: bool
    sentence: str


def accuracy_verdict(metrics: dict[str, Any], max_drop_points: float) -> Verdict:
    """int8 vs fp32 accuracy on the evaluation images against the allowed drop (in points)."""
    if "accuracy_onnx_int8" not in metrics:
        return Verdict(True, "Accuracy was not checked (no --evaluation).")
    fp32, int8 = metrics["accuracy_onnx_fp32"], metrics["accuracy_onnx_int8"]
    # Rounded to a millionth of a point: accuracies are counts over N, and (0.925 - 0.915) * 100
    # is 1.0000000000000009 in floats, which must not fail a limit of 1.
    drop = round((fp32 - int8) * 100.0, 6)
    figures = (
        f"int8 accuracy {int8:.4f} vs fp32 {fp32:.4f} "
        f"({abs(drop):.2f} points {'lost' if drop > 0 else 'gained'}; "
        f"limit --max-accuracy-drop {max_drop_points:g})"
    )
    if drop <= max_drop_points:
        return Verdict(True, f"{figures}: within the limit.")
    return Verdict(
        False,
        f"{figures}: over the limit, nothing published. Try more or more typical calibration images "
        "(--calibration DIR, --calibration-images N), another --calibration-method (entropy, percentile), "
        "--exclude-nodes NAME... to keep sensitive nodes in float, or --keep-fp32 to publish the fp32 file.",
    )


def model_name(path: Path) -> str:
    """A valid manifest name from a file (or SavedModel directory) name:
    ``Cats_vs_Dogs MobileNetV2.h5`` -> ``cats_vs_dogs_mobilenetv2``."""
    stem = path.name if path.is_dir() else path.stem
    name = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in stem.lower()).strip("_.-")
    name = name if name and name[0].isalnum() else f"model_{name}".strip("_")
    return name[:64] or "model"


def _infer_layout(shape: tuple[int | None, ...], where: str) -> Literal["NHWC", "NCHW"]:
    first, last = shape[1], shape[3]
    channels_last, channels_first = last in (1, 3), first in (1, 3)
    if channels_last and not channels_first:
        return "NHWC"
    if channels_first and not channels_last:
        return "NCHW"
    if channels_last and channels_first:
        raise ImportRefused(f"{where}: NHWC or NCHW is ambiguous; pass --layout NHWC or --layout NCHW")
    # Neither reading has 1 or 3 channels: name the count of the likelier one.
    small_first = first is not None and (last is None or first < last)
    layout: Literal["NHWC", "NCHW"] = "NCHW" if small_first else "NHWC"
    channels = first if small_first else last
    raise ImportRefused(
        f"{where} has {channels} channels ({layout}); image models take 1 (grey) or 3 (colour)"
    )


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _short_list(labels: list[str], shown: int = 5) -> str:
    head = ", ".join(labels[:shown])
    return f"[{head}{', ...' if len(labels) > shown else ''}]"


def _pydantic_message(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))} {first.get('msg', '')}".strip()
    return str(error).splitlines()[0]


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
