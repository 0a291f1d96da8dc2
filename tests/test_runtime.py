"""The hardware probe and the backend × device × precision rules built on it."""

from __future__ import annotations

import pytest

from streamdenoise import hardware, runtime
from streamdenoise.errors import BackendUnavailable

# Two x86 CPUs users have: an AVX2-only Zen 3 and an AVX-512/bf16/VNNI Zen 5 (abridged).
ZEN3 = """processor\t: 0
model name\t: AMD Ryzen 7 5800X 8-Core Processor
physical id\t: 0
core id\t: 0
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 1
model name\t: AMD Ryzen 7 5800X 8-Core Processor
physical id\t: 0
core id\t: 0
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 2
physical id\t: 0
core id\t: 1
"""
ZEN5_FLAGS = "avx avx2 avx512f avx512_bf16 avx512_vnni"


def cpu_with(flags: str) -> hardware.CpuInfo:
    return hardware.CpuInfo("test", 4, 2, frozenset(flags.split()))


def test_cpuinfo_parsing_counts_physical_cores_and_reads_flags_once():
    model, flags, cores = hardware.parse_cpuinfo(ZEN3)
    assert model == "AMD Ryzen 7 5800X 8-Core Processor"
    assert cores == 2  # two logical CPUs share core 0
    info = hardware.CpuInfo(model, 3, cores, flags)
    assert info.avx2 and not info.avx512 and not info.bf16 and not info.vnni
    zen5 = cpu_with(ZEN5_FLAGS)
    assert zen5.avx512 and zen5.bf16 and zen5.vnni
    assert zen5.notable_flags == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni"]
    assert hardware.cpu() is hardware.cpu()  # probed once per process
    assert hardware.cpu().physical_cores >= 1


@pytest.mark.parametrize(
    ("flags", "cuda", "backend", "precision", "device", "expected_precision"),
    [
        (ZEN5_FLAGS, False, "torch", None, "cpu", "bf16"),
        ("avx2", False, "torch", None, "cpu", "fp32"),  # no native bf16: fp32
        ("avx2", True, "torch", None, "cuda", "fp16"),  # a GPU: fp16 on CUDA
        (ZEN5_FLAGS, True, "torch", "bf16", "cpu", "bf16"),  # bf16 asks for the CPU
        ("avx2", True, "torch", "fp16", "cuda", "fp16"),
        (ZEN5_FLAGS, True, "openvino", None, "cpu", "bf16"),  # a CPU runtime stays there
        ("avx2", False, "openvino", None, "cpu", "fp32"),
        ("avx2", False, "onnxruntime", None, "cpu", "fp32"),
        ("avx2", True, "tensorrt", None, "cuda:0", "fp16"),
    ],
)
def test_defaults_are_decided_from_the_hardware(
    monkeypatch, flags, cuda, backend, precision, device, expected_precision
):
    monkeypatch.setattr(hardware, "cpu", lambda: cpu_with(flags))
    monkeypatch.setattr(hardware, "has_cuda", lambda: cuda)
    chosen = runtime.default_device(backend, precision)
    assert chosen == device
    assert (precision or runtime.default_precision(backend, chosen)) == expected_precision
    runtime.check(backend, chosen, expected_precision)


@pytest.mark.parametrize(
    ("backend", "device", "precision", "message"),
    [
        ("torch", "cuda", "bf16", "bf16 is a CPU precision"),
        ("torch", "cpu", "fp16", "fp16 is for CUDA"),
        ("torch", "cpu", "int8", "supports precision fp32, bf16, fp16, not int8"),
        ("openvino", "cuda:0", "fp32", "runs on cpu, not cuda:0"),
        ("onnxruntime", "cpu", "bf16", "supports precision fp32, not bf16"),
        ("tensorrt", "cuda:1", "fp16", "runs on cuda:0, not cuda:1"),
        ("torch", "cuda:0", "fp32", "needs an NVIDIA GPU"),
    ],
)
def test_impossible_combinations_say_why_in_one_line(
    monkeypatch, backend, device, precision, message
):
    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    with pytest.raises(BackendUnavailable, match=message):
        runtime.check(backend, device, precision)


def test_bench_measures_gpu_precisions_only_where_a_gpu_is(monkeypatch):
    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    assert runtime.bench_precisions("torch") == ("fp32", "bf16")
    assert runtime.bench_precisions("hqdn3d") == ("uint8",)
    monkeypatch.setattr(hardware, "has_cuda", lambda: True)
    assert runtime.bench_precisions("torch") == ("fp32", "bf16", "fp16")


def test_onednn_isa_cap_hides_the_instructions_the_kernels_will_not_use():
    from streamdenoise.hardware import isa_capped

    zen5 = frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"})
    assert isa_capped(zen5, "AVX2") == {"avx2"}
    assert isa_capped(zen5, "avx512_core_vnni") == {"avx2", "avx512f", "avx512_vnni"}
    assert isa_capped(zen5, None) == zen5
    assert isa_capped(zen5, "ALL") == zen5
