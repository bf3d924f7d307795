"""The manifest and the readable report written next to a converted model; publishing it."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.manifest import MANIFEST_FILENAME, Manifest, OutputSpec, TensorSpec, sha256_of

from .recipe import ModelCard

_TOOLS = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "pillow")
_SOURCE_LABELS = {"keras": "Keras fp32", "source": "your model (fp32)"}
# Files a build may add beside the model, manifest and report, published with them.
PICTURES = ("disagreements.png",)


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


def write_report(
    directory: Path, manifest: Manifest, extra: dict[str, str] | None = None, source_key: str = "keras"
) -> Path:
    """``report.md``: the source | ONNX fp32 | ONNX int8 table (accuracy, latency, size), then
    ``extra`` sections (heading -> Markdown), training, all metrics, quantization (with the CPU
    it was measured on) and tools."""
    metrics = dict(manifest.metrics)
    training = metrics.pop("training", None)
    table = _engine_table(metrics, source_key)
    label = _SOURCE_LABELS.get(source_key, source_key)
    sections: dict[str, Any] = {f"{label} vs ONNX fp32 vs ONNX int8 (one run, side by side)": table}
    sections |= extra or {}
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


def _engine_table(metrics: dict[str, Any], source_key: str = "keras") -> str:
    engines = (f"{source_key}_fp32", "onnx_fp32", "onnx_int8")
    label = _SOURCE_LABELS.get(source_key, source_key)
    rows = [f"| | {label} | ONNX fp32 | ONNX int8 |", "|---|---|---|---|"]
    for metric in ("top1", "top5", "accuracy"):
        if f"{metric}_{engines[0]}" in metrics:
            cells = " | ".join(f"{metrics[f'{metric}_{e}']:.4f}" for e in engines)
            rows.append(f"| {metric} | {cells} |")
    for pct in ("p50", "p90"):
        keys = [f"latency_ms_{pct}_{k}" for k in (source_key, "onnx_fp32", "onnx_int8")]
        if all(k in metrics for k in keys):
            cells = " | ".join(f"{metrics[k]:.2f}" for k in keys)
            rows.append(f"| latency {pct} (ms/image, batch 1) | {cells} |")
    rows.append(
        f"| size (MB) | - | {metrics['size_fp32_bytes'] / 1e6:.2f} | {metrics['size_int8_bytes'] / 1e6:.2f} |"
    )
    return "\n".join(rows)


def publish(build_dir: Path, model_dir: Path, name: str) -> Path:
    """Copy the served model (``manifest.file``), its manifest, report and pictures into
    ``model_dir/name``, atomically: the files go into a temporary sibling directory first,
    which then replaces ``model_dir/name`` by renames, so a server scanning ``model_dir`` (or
    an interrupted run) never sees half a model. Returns ``model_dir/name``.

    Raises:
        pydantic.ValidationError: ``build_dir`` holds no valid manifest.
    """
    manifest = Manifest.model_validate_json((build_dir / MANIFEST_FILENAME).read_text())
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.publishing-", dir=model_dir))
    try:
        for file in (manifest.file, MANIFEST_FILENAME, "report.md", *PICTURES):
            if (build_dir / file).exists():
                shutil.copy2(build_dir / file, staging / file)
        staging.chmod(0o755)  # mkdtemp makes it 0700; a served directory is world-readable
        old = model_dir / f".{name}.replaced-{staging.name.rsplit('-', 1)[-1]}"
        if target.exists():
            target.rename(old)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
