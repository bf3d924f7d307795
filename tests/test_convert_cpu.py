"""The CPU record written into conversion reports, manifests and the quantization sweep."""

from __future__ import annotations

from pathlib import Path

from convert.cpu import cpu_info, describe, int8_kernels

X86_VNNI = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni sha_ni
"""
GRAVITON2 = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
"""


def test_x86_flags_and_kernel_family(tmp_path: Path):
    (tmp_path / "cpuinfo").write_text(X86_VNNI)
    info = cpu_info(tmp_path / "cpuinfo")
    assert info["model"] == "AMD EPYC 9R14"
    assert info["int8_flags"] == ["avx2", "avx512f", "avx512bw", "avx512_vnni"]
    assert info["int8_kernels"] == "avx512_vnni"
    assert "AMD EPYC 9R14" in describe(info) and "-> avx512_vnni" in describe(info)


def test_arm64_features_line(tmp_path: Path):
    (tmp_path / "cpuinfo").write_text(GRAVITON2)
    info = cpu_info(tmp_path / "cpuinfo")
    assert info["int8_flags"] == ["asimddp"] and info["int8_kernels"] == "arm64_dot"


def test_kernel_family_order():
    assert int8_kernels(["avx2"]) == "avx2"
    assert int8_kernels(["avx2", "avx_vnni"]) == "avx_vnni"
    assert int8_kernels(["avx2", "avx512_vnni", "amx_int8"]) == "amx"
    assert int8_kernels([]) == "other"


def test_this_machine_is_described():
    info = cpu_info(emulated="qemu-x86_64 -cpu Haswell")
    assert info["model"] and info["emulated"] == "qemu-x86_64 -cpu Haswell"
    assert set(info["int8_flags"]) <= {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                                      "amx_tile", "amx_int8", "asimddp", "i8mm"}  # fmt: skip
