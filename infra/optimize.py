"""Ship ONNX Runtime's graph optimizations pre-applied, so cold starts do not redo them.

ONNX Runtime optimizes every graph when a session is created; for int8 QDQ models the
extended level (QDQ -> QLinear fusions, node fusions) is most of session creation and makes
the first run slow too. ORT can save the graph after optimization
(``SessionOptions.optimized_model_filepath``,
https://onnxruntime.ai/docs/performance/model-optimizations/graph-optimizations.html#onlineoffline-mode).
Only the *extended* level is saved: those rewrites target ORT's CPU kernels and are the same on
any x86-64 CPU, while the *all* level adds layout changes chosen for the build machine's CPU;
the service still creates its sessions with level *all*, which then finds little left to do.

Offline optimization is tied to the ORT version that wrote the file, so it runs only when the
building ORT is the version pinned for the package, and only for the build machine's
architecture; each optimized graph must give the same outputs as the original on a seeded
input, else the original ships.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.manifest import MANIFEST_FILENAME, Manifest, sha256_of

# Largest |original - optimized| output difference accepted (probabilities in [0, 1]).
MAX_OUTPUT_DELTA = 1e-5
_MACHINE_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def can_optimize_for(arch: str, pinned_ort_version: str) -> str | None:
    """None when models for ``arch`` can be optimized here, else the reason they cannot."""
    if _MACHINE_ARCH.get(platform.machine().lower()) != arch:
        return f"build machine is {platform.machine()}, package is {arch}"
    if ort.__version__ != pinned_ort_version:
        return f"building onnxruntime {ort.__version__} != packaged {pinned_ort_version}"
    return None


def _session(model: bytes | str, level: ort.GraphOptimizationLevel, save_to: Path | None = None):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = 1
    if save_to is not None:
        options.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def output_delta(original: Path, optimized: Path, manifest: Manifest, batch: int = 4) -> float:
    """Max |difference| of the two files' outputs on a seeded uniform input of the model's shape."""
    h, w, c = manifest.input.height_width_channels
    shape = (batch, h, w, c) if manifest.input.layout == "NHWC" else (batch, c, h, w)
    x = np.random.default_rng(0).uniform(0.0, 1.0, shape).astype(np.float32)
    level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    outputs = [
        _session(str(path), level).run([manifest.output.name], {manifest.input.name: x})[0]
        for path in (original, optimized)
    ]
    return float(np.max(np.abs(outputs[0] - outputs[1])))


def optimize_model_dir(model_dir: Path) -> dict:
    """Replace ``model_dir``'s model by its extended-level optimized graph and update its manifest.

    The manifest's ``file``, ``sha256`` and ``size_bytes`` then describe the optimized file
    (the service verifies them before loading), and ``tools`` records how it was made.

    Returns:
        ``{"optimized": bool, "reason" | "delta": ...}`` for the size report.
    """
    manifest_path = model_dir / MANIFEST_FILENAME
    fields = json.loads(manifest_path.read_text())
    manifest = Manifest.model_validate(fields)
    original = model_dir / manifest.file
    optimized = original.with_name(original.name.removesuffix(".onnx") + ".ort-opt.onnx")
    _session(str(original), ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, save_to=optimized)
    delta = output_delta(original, optimized, manifest)
    if delta > MAX_OUTPUT_DELTA:
        optimized.unlink()
        return {"optimized": False, "reason": f"outputs differ by {delta:.3g}"}
    original.unlink()
    fields.update(
        file=optimized.name,
        sha256=sha256_of(optimized),
        size_bytes=optimized.stat().st_size,
        tools={**manifest.tools, "onnxruntime_offline_optimization": f"{ort.__version__} extended"},
    )
    manifest_path.write_text(Manifest.model_validate(fields).model_dump_json(indent=2) + "\n")
    return {"optimized": True, "max_output_delta": delta}
