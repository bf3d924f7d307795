"""Static int8 quantization (QDQ) with ONNX Runtime.

Pipeline: ``quant_pre_process`` (ONNX Runtime basic graph optimisation + shape inference) then
``quantize_static`` in QDQ format, calibrated on real images. Reference:
https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

Calibration = Literal["minmax", "entropy", "percentile"]

_CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_QUANT_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}


@dataclass(frozen=True)
class QuantizationConfig:
    """How a model is quantized; recorded in its manifest.

    Args:
        per_channel: one scale per output channel of each weight tensor (needed for
            depthwise convolutions, whose channels have very different ranges).
        activation_type: ``uint8`` or ``int8`` for activations. ONNX Runtime's fastest x86
            kernels are U8S8 (uint8 activations, int8 weights).
        weight_type: ``int8`` or ``uint8`` for weights.
        calibration: how activation ranges are chosen from calibration data.
        percentile: for ``percentile`` calibration, the percentile of |activation| kept.
        op_types_excluded: operator types left in float32 (e.g. ``Softmax``, so output
            probabilities are not rounded to 1/256 steps).
        nodes_excluded: node names left in float32.
        reduce_range: 7-bit weights. U8S8 on x86 CPUs without VNNI (AVX2, like this
            project's build machine) multiplies with ``vpmaddubsw``, whose int16 sums saturate;
            7-bit weights keep them in range (ONNX Runtime quantization docs, "When and why do
            I need to try U8U8?" / reduce_range).
        float_edges: keep the first and the last weighted operator (Conv / MatMul / Gemm) in
            float32: the image-facing and class-facing layers are the most sensitive to
            rounding, and together cost little time.
        calibration_images: how many real images were used (informational).
    """

    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    weight_type: Literal["uint8", "int8"] = "int8"
    calibration: Calibration = "minmax"
    percentile: float = 99.999
    op_types_excluded: tuple[str, ...] = ("Softmax",)
    nodes_excluded: tuple[str, ...] = ()
    reduce_range: bool = False
    float_edges: bool = False
    calibration_images: int = 0
    format: str = field(default="QDQ", init=False)

    def __post_init__(self) -> None:
        if self.calibration not in _CALIBRATION_METHODS:
            raise ValueError(f"calibration must be one of {sorted(_CALIBRATION_METHODS)}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")

    @classmethod
    def x86_u8s8_reduced(cls, **overrides: Any) -> QuantizationConfig:
        """U8S8 per-channel QDQ with 7-bit weights: the fast U8S8 kernels, with no int16
        saturation on AVX2 CPUs that lack VNNI, and correct (slightly coarser) on VNNI CPUs."""
        defaults = {
            "activation_type": "uint8",
            "weight_type": "int8",
            "per_channel": True,
            "reduce_range": True,
        }
        return cls(**{**defaults, **overrides})

    def as_manifest(self) -> dict[str, Any]:
        record = asdict(self)
        record["op_types_excluded"] = list(self.op_types_excluded)
        record["nodes_excluded"] = list(self.nodes_excluded)
        if self.calibration != "percentile":
            record.pop("percentile")
        return record


def quantize(
    fp32_path: Path, int8_path: Path, reader: CalibrationDataReader, config: QuantizationConfig
) -> Path:
    """Write the int8 QDQ model for ``fp32_path`` to ``int8_path`` and return ``int8_path``."""
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        model = onnx.load(str(prepared))
        op_types = sorted({n.op_type for n in model.graph.node} - set(config.op_types_excluded))
        excluded = list(config.nodes_excluded)
        extra_options: dict[str, Any] = {"CalibMovingAverage": False}
        if config.float_edges:
            excluded += edge_nodes(model)
        if config.calibration == "percentile":
            extra_options["CalibPercentile"] = config.percentile
        quantize_static(
            str(prepared),
            str(int8_path),
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            nodes_to_exclude=excluded,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=_QUANT_TYPES[config.activation_type],
            weight_type=_QUANT_TYPES[config.weight_type],
            calibrate_method=_CALIBRATION_METHODS[config.calibration],
            extra_options=extra_options,
        )
    return int8_path


WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")


def edge_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes ``float_edges`` keeps in float32: the first weighted node
    (``WEIGHTED_OPS``), the last one and every node after it (e.g. the Reshape of the logits),
    so the class scores are never rounded to 256 levels. Graph order is topological (ONNX)."""
    nodes = model.graph.node
    weighted = [i for i, n in enumerate(nodes) if n.op_type in WEIGHTED_OPS]
    if not weighted:
        return []
    return [nodes[weighted[0]].name] + [n.name for n in nodes[weighted[-1] :]]


def count_quantized_nodes(path: Path) -> dict[str, int]:
    """Node counts of a QDQ model: QuantizeLinear, DequantizeLinear, and all nodes."""
    nodes = onnx.load(str(path)).graph.node
    return {
        "QuantizeLinear": sum(n.op_type == "QuantizeLinear" for n in nodes),
        "DequantizeLinear": sum(n.op_type == "DequantizeLinear" for n in nodes),
        "nodes": len(nodes),
    }


# Named int8 formats (``--quantization NAME``; the sweep in ``benchmarks.quantization``). Each is
# per-channel QDQ with uint8 activations; calibration and excluded operators come from the family.
PRESETS: dict[str, QuantizationConfig] = {
    "u8u8": QuantizationConfig(weight_type="uint8"),
    "u8s8": QuantizationConfig(weight_type="int8"),
    "u8s8_reduce_range": QuantizationConfig(weight_type="int8", reduce_range=True),
}
