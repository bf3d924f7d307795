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

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from .calibration import ArrayCalibrationReader

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
        bias_correction: after a first quantization, subtract from each Conv bias the mean
            output shift its weight rounding causes, ``(W_int8 - W) . E[x]`` with ``E[x]`` the
            per-channel mean input over the calibration images, then quantize again
            (``correct_biases``; Nagel et al. 2019, "Data-Free Quantization Through Weight
            Equalization and Bias Correction", section 4.2, empirical variant).
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
    bias_correction: bool = False
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
    fp32_path: Path, int8_path: Path, reader: ArrayCalibrationReader, config: QuantizationConfig
) -> Path:
    """Write the int8 QDQ model for ``fp32_path`` to ``int8_path`` and return ``int8_path``.

    ``reader`` is rewound before each pass over the calibration images (two quantizations and
    one float pass with ``config.bias_correction``)."""
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

        def run(source: Path) -> None:
            reader.rewind()
            quantize_static(
                str(source),
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

        run(prepared)
        if config.bias_correction:
            reader.rewind()
            corrected = Path(tmp) / "bias_corrected.onnx"
            onnx.save(correct_biases(model, onnx.load(str(int8_path)), reader), str(corrected))
            run(corrected)
    return int8_path


def _dequantized_weights(qdq: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Float values of every DequantizeLinear whose input is an initializer (the int8 weights),
    keyed by its output name: ``(q - zero_point) * scale`` along its ``axis`` (ONNX spec)."""
    init = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    weights = {}
    for node in qdq.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in init:
            continue
        q = init[node.input[0]].astype(np.float64)
        scale = init[node.input[1]].astype(np.float64)
        zero = init[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(scale)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        if scale.ndim == 1 and scale.size > 1:
            shape[axis] = scale.size
        weights[node.output[0]] = (q - zero.reshape(shape)) * scale.reshape(shape)
    return weights


def correct_biases(
    prepared: onnx.ModelProto, qdq: onnx.ModelProto, reader: ArrayCalibrationReader
) -> onnx.ModelProto:
    """A copy of ``prepared`` (the float model ``qdq`` was quantized from) whose Conv biases
    absorb the mean output error of the weights' rounding in ``qdq``.

    For a Conv with weight W [O, I/G, kH, kW], its int8 dequantized W_q and a per-channel mean
    input m [I] (fp32 model, all of ``reader``'s batches): ``b[o] -= sum_i,k (W_q - W)[o, i, k]
    * m[g(o) * I/G + i]``. Border effects of padding are ignored. Convs without a float bias
    initializer, or not quantized in ``qdq``, are left alone.
    """
    import onnxruntime as ort

    init = {t.name: t for t in prepared.graph.initializer}
    dequantized = _dequantized_weights(qdq)
    qdq_convs = {n.name: n for n in qdq.graph.node if n.op_type == "Conv"}
    convs = [
        n
        for n in prepared.graph.node
        if n.op_type == "Conv" and len(n.input) > 2 and n.input[2] in init and n.name in qdq_convs
        and qdq_convs[n.name].input[1] in dequantized
    ]  # fmt: skip
    probe = onnx.ModelProto()
    probe.CopyFrom(prepared)
    outputs = {o.name for o in probe.graph.output}
    graph_inputs = {i.name for i in probe.graph.input}
    wanted = sorted({n.input[0] for n in convs})
    for name in wanted:
        if name not in outputs and name not in graph_inputs:
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    sums: dict[str, np.ndarray] = {name: np.zeros(1) for name in wanted}  # broadcast to [C] on first add
    count = 0
    names = [o.name for o in session.get_outputs()]
    while (batch := reader.get_next()) is not None:
        (input_name, images), *_ = batch.items()
        for start in range(0, len(images), 8):  # every conv input of 8 images at once: ~1 GB for ResNet50
            feed = {input_name: images[start : start + 8]}
            values = dict(zip(names, session.run(None, feed), strict=True)) | feed
            for name in wanted:
                sums[name] = sums[name] + values[name].mean(axis=(2, 3), dtype=np.float64).sum(axis=0)
            count += len(feed[input_name])
    corrected = onnx.ModelProto()
    corrected.CopyFrom(prepared)
    biases = {t.name: t for t in corrected.graph.initializer}
    for node in convs:
        weight = numpy_helper.to_array(init[node.input[1]]).astype(np.float64)
        error = dequantized[qdq_convs[node.name].input[1]] - weight  # [O, I/G, kH, kW]
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        mean = (sums[node.input[0]] / count).reshape(groups, -1)  # [G, I/G]
        per_group = error.sum(axis=(2, 3)).reshape(groups, -1, error.shape[1])  # [G, O/G, I/G]
        shift = np.einsum("goi,gi->go", per_group, mean).reshape(-1)
        bias = numpy_helper.to_array(biases[node.input[2]])
        biases[node.input[2]].CopyFrom(
            numpy_helper.from_array((bias - shift).astype(bias.dtype), node.input[2])
        )
    return corrected


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


# Named int8 formats (``--quantization NAME``; the sweep in ``benchmarks.accuracy.quantization``). Each is
# per-channel QDQ with uint8 activations; calibration and excluded operators come from the family.
PRESETS: dict[str, QuantizationConfig] = {
    "u8u8": QuantizationConfig(weight_type="uint8"),
    "u8s8": QuantizationConfig(weight_type="int8"),
    "u8s8_reduce_range": QuantizationConfig(weight_type="int8", reduce_range=True),
    "u8s8_reduce_range_bias_correction": QuantizationConfig(
        weight_type="int8", reduce_range=True, bias_correction=True
    ),
}
