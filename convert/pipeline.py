"""The one conversion pipeline: obtain the Keras model -> export -> quantize -> validate ->
manifest + report (-> publish, by the caller). Every family runs through ``build``; what
differs between families comes from its ``Recipe``.

Build directory (``out``): ``<name>.keras`` (trained families), ``<name>.fp32.onnx``,
``<name>.int8.onnx``, ``manifest.json`` (describes the int8 file) and ``report.md``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.manifest import Manifest

from . import artifacts, evaluate, latency
from .calibration import ArrayCalibrationReader
from .cpu import cpu_info
from .onnx_export import INPUT_NAME
from .quantize import count_quantized_nodes, quantize
from .recipe import Recipe


def build(recipe: Recipe, out: Path) -> Path:
    """Run every step for ``recipe`` into ``out``; returns ``out`` (holding ``manifest.json``).

    Raises:
        ValueError: the model's input is not a static H x W x C image, or its output size does
            not match the recipe's labels.
    """
    name, tag = recipe.name, f"[{recipe.name}]"
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    obtained = recipe.obtain()
    model = obtained.model
    facts: dict[str, Any] = dict(obtained.facts)
    if obtained.training:
        facts["train_seconds"] = round(time.perf_counter() - started, 1)
    if recipe.save_keras:
        model.save(out / f"{name}.keras")
    input_spec = recipe.input_spec(model)
    card = recipe.card(model)
    units = recipe.output_units(model)
    if units != (1 if card.output_kind == "sigmoid" else len(card.labels)):
        raise ValueError(f"{name}: {units} output units but {len(card.labels)} labels ({card.output_kind})")

    print(f"{tag} exporting to ONNX", flush=True)
    fp32_path = recipe.export(model, out / f"{name}.fp32.onnx", input_spec, card.output_name)

    reader = ArrayCalibrationReader(recipe.calibration_images(), INPUT_NAME)  # drops a ragged last batch
    config = replace(recipe.quantization, calibration_images=len(reader.images))
    print(f"{tag} quantizing to int8 ({config.calibration}, {len(reader.images)} images)", flush=True)
    started = time.perf_counter()
    int8_path = quantize(fp32_path, out / f"{name}.int8.onnx", reader, config)
    quantize_seconds = round(time.perf_counter() - started, 1)
    del reader

    images, labels = recipe.evaluation_data()
    print(f"{tag} validating on {len(images)} images", flush=True)
    metrics: dict[str, Any] = {recipe.evaluation_count_key: int(len(images))}
    source = recipe.source_predict(model)
    found, outputs = evaluate.validate_outputs(
        source, fp32_path, int8_path, images, labels, recipe.metric_groups, source_key=recipe.source_key
    )
    metrics |= found
    metrics |= recipe.review(out, outputs, labels)
    metrics |= facts
    metrics["quantize_seconds"] = quantize_seconds
    if "latency" in recipe.metric_groups:
        metrics |= latency.side_by_side(
            recipe.source_call(model), fp32_path, int8_path, images, runs=recipe.latency_runs,
            source_key=recipe.source_key,
        )  # fmt: skip
    if obtained.training:
        metrics["training"] = obtained.training

    quantization = {
        **config.as_manifest(),
        **count_quantized_nodes(int8_path),
        "measured_on": cpu_info(),
    }
    if recipe.keep_fp32:
        quantization = {
            "served": "fp32 (--keep-fp32): the int8 file is built and measured, not served"
        } | quantization
    manifest = artifacts.write_manifest(
        fp32_path if recipe.keep_fp32 else int8_path,
        name=name,
        version=recipe.version,
        card=card,
        input_spec=input_spec,
        quantization=quantization,
        metrics=metrics,
    )
    artifacts.write_report(out, manifest, recipe.report_sections(metrics), source_key=recipe.source_key)
    print(f"{tag} done: {summary(manifest)}", flush=True)
    return out


def summary(manifest: Manifest) -> str:
    """``key=value`` pairs of the manifest's scalar metrics, for the build log."""
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in manifest.metrics.items()
        if not isinstance(v, dict)
    )
