"""Write the manifest and the readable report next to a converted model; publish it."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import shutil
from pathlib import Path
from typing import Any

from service.manifest import MANIFEST_FILENAME, Manifest, sha256_of

_TOOLS = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy", "pillow")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in _TOOLS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(model_path: Path, fields: dict[str, Any]) -> Manifest:
    """Validate ``fields`` plus the file's size and sha256, and write ``manifest.json`` beside it."""
    manifest = Manifest.model_validate(
        {
            **fields,
            "file": model_path.name,
            "sha256": sha256_of(model_path),
            "size_bytes": model_path.stat().st_size,
            "tools": tool_versions(),
            "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        }
    )
    (model_path.parent / MANIFEST_FILENAME).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def write_report(directory: Path, title: str, sections: dict[str, Any]) -> Path:
    """A markdown report: one table per section (dict of name -> value) or a paragraph."""
    lines = [f"# {title}", ""]
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
