"""The manifest and the readable report written next to a converted model; publishing it."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import shutil
from pathlib import Path
from typing import Any

from service.manifest import MANIFEST_FILENAME, Manifest, OutputSpec, TensorSpec, sha256_of

from .recipe import ModelCard

_TOOLS = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "pillow")
_ENGINES = ("keras_fp32", "onnx_fp32", "onnx_int8")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in _TOOLS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(
    model_path: Path,
    *,
    name: str,
    version: str,
    card: ModelCard,
    input_spec: TensorSpec,
    quantization: dict[str, Any],
    metrics: dict[str, Any],
) -> Manifest:
    """Build the typed ``Manifest`` for ``model_path`` (adding its size, sha256, tool versions
    and creation time) and write it as ``manifest.json`` beside the model.

    Raises:
        pydantic.ValidationError: the card is inconsistent (e.g. a sigmoid with 3 labels).
    """
    manifest = Manifest(
        name=name,
        version=version,
        description=card.description,
        file=model_path.name,
        sha256=sha256_of(model_path),
        size_bytes=model_path.stat().st_size,
        labels=card.labels,
        input=input_spec,
        output=OutputSpec(name=card.output_name, kind=card.output_kind),
        preprocessing=card.preprocessing,
        weights=card.weights,
        quantization=quantization,
        metrics=metrics,
        tools=tool_versions(),
        created=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )
    (model_path.parent / MANIFEST_FILENAME).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def write_report(directory: Path, manifest: Manifest) -> Path:
    """``report.md``: the Keras | ONNX fp32 | ONNX int8 table (accuracy, latency, size), then
    training, all metrics, quantization (with the CPU it was measured on) and tools."""
    metrics = dict(manifest.metrics)
    training = metrics.pop("training", None)
    table = _engine_table(metrics)
    sections: dict[str, Any] = {"Keras vs ONNX fp32 vs ONNX int8 (one run, side by side)": table}
    if training:
        sections["Training"] = training
    quantization = dict(manifest.quantization)
    cpu = quantization.pop("measured_on", None)
    sections |= {"All metrics": metrics, "Quantization": quantization}
    if cpu:
        sections["CPU the numbers were measured on"] = cpu
    sections["Tools"] = manifest.tools
    lines = [f"# {manifest.name} {manifest.version}: conversion report", ""]
    for heading, body in sections.items():
        lines += [f"## {heading}", ""]
        if isinstance(body, dict):
            lines += ["| | |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in body.items()]
        else:
            lines.append(str(body))
        lines.append("")
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path


def _engine_table(metrics: dict[str, Any]) -> str:
    rows = ["| | Keras fp32 | ONNX fp32 | ONNX int8 |", "|---|---|---|---|"]
    for metric in ("top1", "top5", "accuracy"):
        if f"{metric}_keras_fp32" in metrics:
            cells = " | ".join(f"{metrics[f'{metric}_{e}']:.4f}" for e in _ENGINES)
            rows.append(f"| {metric} | {cells} |")
    for pct in ("p50", "p90"):
        keys = [f"latency_ms_{pct}_{k}" for k in ("keras", "onnx_fp32", "onnx_int8")]
        if all(k in metrics for k in keys):
            cells = " | ".join(f"{metrics[k]:.2f}" for k in keys)
            rows.append(f"| latency {pct} (ms/image, batch 1) | {cells} |")
    rows.append(
        f"| size (MB) | - | {metrics['size_fp32_bytes'] / 1e6:.2f} | {metrics['size_int8_bytes'] / 1e6:.2f} |"
    )
    return "\n".join(rows)


def publish(build_dir: Path, model_dir: Path, name: str) -> Path:
    """Copy the int8 model, its manifest and report into ``model_dir/name`` (served directory)."""
    manifest = Manifest.model_validate_json((build_dir / MANIFEST_FILENAME).read_text())
    target = model_dir / name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for file in (manifest.file, MANIFEST_FILENAME, "report.md"):
        if (build_dir / file).exists():
            shutil.copy2(build_dir / file, target / file)
    return target


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
