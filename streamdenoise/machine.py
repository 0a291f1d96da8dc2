"""What machine a measurement came from: CPU, GPU, library versions, git commit.

Every benchmark result carries this record so that figures from different machines are
never compared by accident. Cheap to collect (no heavy imports except when CUDA is asked).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

#: CPU flags that decide inference speed (SIMD width, bf16/fp16/int8 dot products).
RELEVANT_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "neon",
    "asimd",
    "sve",
)
PACKAGES = (
    "streamdenoise",
    "torch",
    "numpy",
    "av",
    "opencv-python-headless",
    "onnx",
    "onnxruntime",
    "openvino",
    "tensorrt",
    "psutil",
    "matplotlib",
)


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags", "Features") and key not in info:
            info[key] = value.strip()
    return info


def cpu_info() -> dict:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        physical, memory_gb = None, None
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "flags": [f for f in RELEVANT_FLAGS if f in flags],
        "memory_gb": memory_gb,
        "arch": platform.machine(),
    }


def gpu_info() -> list[str]:
    """GPU names (with memory and driver) from nvidia-smi; empty when there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import av

        versions["ffmpeg (PyAV)"] = str(av.library_versions.get("libavcodec", "?"))
    except ImportError:
        pass
    return versions


def git_commit(repo: Path | None = None) -> str:
    """HEAD commit, with ``+dirty`` when tracked files differ; "unknown" outside git."""
    cwd = repo or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict:
    """The record stored next to every benchmark result."""
    return {
        "cpu": cpu_info(),
        "gpus": gpu_info(),
        "os": f"{platform.system()} {platform.release()}",
        "versions": library_versions(),
        "git_commit": git_commit(),
    }
