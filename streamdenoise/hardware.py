"""What this machine offers a denoiser: the CPU's instruction sets and cores, and CUDA devices.

Everything here is read once per process and cached, so that the runtime choice
(:mod:`streamdenoise.runtime`), the backends, ``streamdenoise devices`` and the benchmark
records all see the same answer. CUDA devices are found through torch when it is installed,
else through cuda-python, so a TensorRT-only install needs no torch to find its GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
from dataclasses import dataclass

#: Flags that decide which CPU kernels the runtimes pick (reported by ``devices`` and benches).
NOTABLE_CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "neon",
)


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cores: int
    physical_cores: int
    flags: frozenset[str]

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags

    @property
    def bf16(self) -> bool:
        """Native bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def vnni(self) -> bool:
        """int8 dot-product instructions (AVX512-VNNI, AVX-VNNI or AMX): what makes int8 pay."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def notable_flags(self) -> list[str]:
        return [flag for flag in NOTABLE_CPU_FLAGS if flag in self.flags]

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "cores": self.logical_cores,
            "physical_cores": self.physical_cores,
            "flags": self.notable_flags,
        }


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    memory_gib: float


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.read()
    except OSError:
        return ""


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str], int]:
    """(model name, flags, physical core count or 0) from the text of ``/proc/cpuinfo``."""
    model, flags, cores = "", frozenset(), set()
    physical_id = "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
    return model, flags, len(cores)


# What oneDNN's ISA cap (``ONEDNN_MAX_CPU_ISA``, e.g. ``AVX2`` to run as an AVX2-only CPU
# would) hides from the kernels. OpenVINO's and torch's oneDNN honour the cap, but OpenVINO's
# capability list does not, so the probe applies it to the flags everyone reads.
_AVX512 = {"avx512f", "avx512_vnni", "avx512_bf16"}
_AMX = {"amx_bf16", "amx_int8"}
ISA_CAP_HIDES: dict[str, frozenset[str]] = {
    "SSE41": frozenset({"avx2", "avx_vnni", *_AVX512, *_AMX}),
    "AVX": frozenset({"avx2", "avx_vnni", *_AVX512, *_AMX}),
    "AVX2": frozenset({"avx_vnni", *_AVX512, *_AMX}),
    "AVX2_VNNI": frozenset({*_AVX512, *_AMX}),
    "AVX2_VNNI_2": frozenset({*_AVX512, *_AMX}),
    "AVX512_CORE": frozenset({"avx_vnni", "avx512_vnni", "avx512_bf16", *_AMX}),
    "AVX512_CORE_VNNI": frozenset({"avx512_bf16", *_AMX}),
    "AVX512_CORE_BF16": frozenset(_AMX),
}


def isa_capped(flags: frozenset[str], cap: str | None) -> frozenset[str]:
    """``flags`` less what oneDNN's ISA cap ``cap`` hides (unknown or no cap: all of them)."""
    return flags - ISA_CAP_HIDES.get((cap or "").strip().upper(), frozenset())


def _physical_cores(from_cpuinfo: int) -> int:
    """Physical cores (SMT siblings excluded): the thread count conv-heavy runtimes want."""
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
    except ImportError:
        count = None
    return count or from_cpuinfo or os.cpu_count() or 1


@functools.cache
def cpu() -> CpuInfo:
    model, flags, cores = parse_cpuinfo(_read_cpuinfo())
    return CpuInfo(
        model=model or platform.processor() or platform.machine(),
        logical_cores=os.cpu_count() or 1,
        physical_cores=_physical_cores(cores),
        flags=isa_capped(flags, os.environ.get("ONEDNN_MAX_CPU_ISA")),
    )


def _torch_cuda_devices() -> tuple[CudaDevice, ...] | None:
    """None when torch is not installed."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return ()
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(CudaDevice(index, props.name, round(props.total_memory / 2**30, 1)))
    return tuple(devices)


def cudart():
    """cuda-python's runtime module (either of its import paths), or None."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            return None
    return runtime


def _cuda_python_devices() -> tuple[CudaDevice, ...]:
    runtime = cudart()
    if runtime is None:
        return ()
    err, count = runtime.cudaGetDeviceCount()
    if int(err) != 0:
        return ()
    devices = []
    for index in range(count):
        err, props = runtime.cudaGetDeviceProperties(index)
        if int(err) == 0:
            name = props.name.decode(errors="replace").rstrip("\x00")
            devices.append(CudaDevice(index, name, round(props.totalGlobalMem / 2**30, 1)))
    return tuple(devices)


@functools.cache
def cuda_devices() -> tuple[CudaDevice, ...]:
    """The NVIDIA GPUs this process can use (empty without a driver, a GPU or a CUDA runtime)."""
    found = _torch_cuda_devices()
    return found if found else _cuda_python_devices()


def has_cuda() -> bool:
    return bool(cuda_devices())
