"""The CPU a number was measured on: model name and the ISA flags that decide int8 speed.

ONNX Runtime's int8 matrix kernels (MLAS) pick their path from these instruction sets: AVX2
alone multiplies u8 x s8 with ``vpmaddubsw`` into saturating int16 sums (so U8S8 weights can
lose accuracy); AVX-512 VNNI / AVX-VNNI (``vpdpbusd``) and AMX accumulate in int32 without
saturation; on arm64, ``asimddp`` (SDOT/UDOT) and ``i8mm`` (SMMLA/UMMLA) do the same. Flags are
read from ``/proc/cpuinfo`` (Linux names; arm64 lists "Features" instead of "flags").
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

INT8_FLAGS = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "asimddp",
    "i8mm",
)
CPUINFO = Path("/proc/cpuinfo")


def int8_kernels(flags: set[str] | list[str]) -> str:
    """The int8 kernel family ONNX Runtime can use with these flags (a label for reports).

    ``amx``, ``avx512_vnni``, ``avx_vnni``, ``avx2`` (saturating u8 x s8), ``arm64_dot``
    (``asimddp`` / ``i8mm``), or ``other``.
    """
    present = set(flags)
    for flag, label in (
        ("amx_int8", "amx"),
        ("avx512_vnni", "avx512_vnni"),
        ("avx_vnni", "avx_vnni"),
        ("avx2", "avx2"),
        ("i8mm", "arm64_dot"),
        ("asimddp", "arm64_dot"),
    ):
        if flag in present:
            return label
    return "other"


def cpu_info(cpuinfo: Path = CPUINFO, emulated: str | None = None) -> dict[str, Any]:
    """``{"model", "machine", "int8_flags", "int8_kernels"[, "emulated"]}`` for this machine.

    Args:
        cpuinfo: the ``/proc/cpuinfo`` text file to read (missing: model from ``platform``).
        emulated: the CPU model a user-mode emulator presents (e.g. ``"qemu-x86_64 -cpu
            Haswell"``). ``/proc/cpuinfo`` under qemu-user still describes the host, so the
            caller names the emulated CPU and passes that CPU's flags as ``cpuinfo`` text, or
            accepts the host's flags with this label beside them.
    """
    model, flags = "", set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model", "hardware") and not model:
                model = value.strip()
            elif key in ("flags", "features"):
                flags |= set(value.split())
    present = [flag for flag in INT8_FLAGS if flag in flags]
    info: dict[str, Any] = {
        "model": model or platform.processor() or "unknown",
        "machine": platform.machine(),
        "int8_flags": present,
        "int8_kernels": int8_kernels(present),
    }
    if emulated:
        info["emulated"] = emulated
    return info


def describe(info: dict[str, Any]) -> str:
    """One line for reports, e.g. ``AMD EPYC (x86_64; avx2 avx512f avx512_vnni -> avx512_vnni)``."""
    flags = " ".join(info["int8_flags"]) or "no int8 ISA flags"
    emulated = f", emulated as {info['emulated']}" if info.get("emulated") else ""
    return f"{info['model']} ({info['machine']}; {flags} -> {info['int8_kernels']}{emulated})"
