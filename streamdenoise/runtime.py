"""Which neural runtime runs where, in which precision: the rules, decided in one place.

A neural backend (torch, ONNX Runtime, OpenVINO, TensorRT) runs on a device (``cpu`` or
``cuda[:N]``) in a precision. fp16 is a GPU precision; bf16 and int8 are CPU precisions (bf16
only pays on CPUs with native bf16 instructions, int8 needs a calibrated export). The
defaults are what ran fastest in ``benchmarks/results`` (``default_runtime.md``,
``bench_cpu.md``, ``gpu/bench_model.md``): a CUDA GPU runs torch in fp16; a CPU runs
OpenVINO when installed, in bf16 where the CPU has it, else fp32.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streamdenoise import hardware
from streamdenoise.errors import BackendUnavailable, UsageError

if TYPE_CHECKING:
    from streamdenoise.backends.base import Denoiser

log = logging.getLogger("streamdenoise")

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: What ``--backend auto`` runs when the trained model cannot load (no torch, no weights).
FALLBACK_BACKEND = "atadenoise"
#: Precisions that only run on one kind of device.
CPU_ONLY = ("bf16", "int8")
GPU_ONLY = ("fp16",)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Runtime:
    precisions: tuple[str, ...]
    #: Device kinds: "cpu", "cuda" (any index) or "cuda:0" (the first GPU only).
    devices: tuple[str, ...]
    #: Precisions ``bench`` measures unless told otherwise (GPU ones only where a GPU is).
    bench_precisions: tuple[str, ...]


RUNTIMES: dict[str, Runtime] = {
    "torch": Runtime(("fp32", "bf16", "fp16"), ("cpu", "cuda"), ("fp32", "bf16", "fp16")),
    "onnxruntime": Runtime(("fp32",), ("cpu",), ("fp32",)),
    "openvino": Runtime(("fp32", "bf16", "int8"), ("cpu",), ("fp32", "bf16", "int8")),
    "tensorrt": Runtime(("fp16", "fp32"), ("cuda:0",), ("fp16",)),
}


def is_gpu(device: str) -> bool:
    return device.startswith("cuda")


def default_device(backend: str, precision: str | None) -> str:
    """Where ``backend`` runs when the caller said nothing (or ``auto``), given the precision."""
    devices = RUNTIMES[backend].devices
    if devices == ("cpu",):
        return "cpu"
    if devices == ("cuda:0",):
        return "cuda:0"
    if precision in GPU_ONLY:
        return "cuda"
    if precision in CPU_ONLY or not hardware.has_cuda():
        return "cpu"
    return "cuda"


def default_precision(backend: str, device: str) -> str:
    """fp16 on a GPU; bf16 on a CPU with native bf16 where the runtime has it; else fp32."""
    precisions = RUNTIMES[backend].precisions
    if is_gpu(device):
        return "fp16" if "fp16" in precisions else "fp32"
    return "bf16" if "bf16" in precisions and hardware.cpu().bf16 else "fp32"


def _runs_on(runtime: Runtime, device: str) -> bool:
    if device == "cpu":
        return "cpu" in runtime.devices
    return "cuda" in runtime.devices or (
        device in ("cuda", "cuda:0") and "cuda:0" in runtime.devices
    )


def check(backend: str, device: str, precision: str) -> None:
    """Raise :class:`BackendUnavailable` with one line saying why this combination cannot run."""
    runtime = RUNTIMES[backend]
    if precision not in runtime.precisions:
        allowed = ", ".join(runtime.precisions)
        raise BackendUnavailable(
            f"backend {backend!r} supports precision {allowed}, not {precision}"
        )
    if not _runs_on(runtime, device):
        where = " or ".join("cuda[:N]" if d == "cuda" else d for d in runtime.devices)
        raise BackendUnavailable(f"backend {backend!r} runs on {where}, not {device}")
    if is_gpu(device):
        if precision in CPU_ONLY:
            raise BackendUnavailable(f"{precision} is a CPU precision; on CUDA use fp16, fp32")
        if not hardware.has_cuda():
            raise BackendUnavailable(
                f"{precision} on {device} needs an NVIDIA GPU, and none is usable here; "
                "on the CPU use bf16 or fp32"
            )
    elif precision in GPU_ONLY:
        raise BackendUnavailable(f"{precision} is for CUDA; on the CPU use bf16 or fp32")


def fastest_backend(device: str | None = None, precision: str | None = None) -> str:
    """The neural backend that runs the shipped models fastest here for ``device``/``precision``.

    torch on a CUDA GPU (fp16/fp32); on the CPU OpenVINO when installed (bf16 OpenVINO ran the
    pipeline 1.3–1.4× faster than bf16 torch, ``benchmarks/results/default_runtime.md``), else
    torch.
    """
    from streamdenoise.backends import unavailable_reason

    device = device or "auto"
    if precision in GPU_ONLY or is_gpu(device):
        return "torch"
    gpu_precision = precision in (None, "fp32")
    if device == "auto" and gpu_precision and hardware.has_cuda():
        return "torch"
    return "openvino" if unavailable_reason("openvino") is None else "torch"


#: Frames of a per-frame model a CPU runtime keeps in flight in a pipeline. On 2 cores one
#: two-thread call per frame is fragile (the threads meet at every layer; when one is
#: preempted the other waits): `fast` int8 at 720p took 16.6–24.9 ms a frame that way and a
#: steady 15.8 as two one-thread streams, 33.1 against 21.1 beside a 30 fps x264 encoder
#: (benchmarks/results/frames_in_flight_zen5-*.md).
PIPELINED_FRAMES = 2


def frames_in_flight(backend: str, device: str, temporal: bool, threads: int | None) -> int:
    """How many frames a pipeline may hand ``backend`` before the first comes back.

    Two for a per-frame model on OpenVINO's CPU plugin with two or more cores (each frame
    on its own stream of threads); one everywhere else: a recurrent model's next frame
    needs this frame's output, and the GPU runtimes batch instead."""
    cores = threads or hardware.cpu().physical_cores
    if backend == "openvino" and device == "cpu" and not temporal and cores >= 2:
        return PIPELINED_FRAMES
    return 1


def bench_precisions(backend: str) -> tuple[str, ...]:
    """Precisions ``bench`` measures ``backend`` in on this machine (classical: uint8)."""
    runtime = RUNTIMES.get(backend)
    if runtime is None:
        return ("uint8",)
    if "cpu" in runtime.devices and not hardware.has_cuda():
        return tuple(p for p in runtime.bench_precisions if p not in GPU_ONLY)
    return runtime.bench_precisions


def choose_backend(
    backend: str | None = "auto",
    model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> tuple[str, str | None]:
    """(backend, model) for a run. The model is ``auto`` (the trained tiers, see
    :mod:`streamdenoise.auto`) unless one is named: with backend ``auto`` on the fastest runtime
    here when torch and a weights file are there, else the classical fallback (logged); with a
    neural backend named, on it. A model named with backend ``auto`` runs on the fastest
    runtime too (pinning a tier does not change the runtime). A classical backend runs without
    a model; ``auto`` with one is a usage error."""
    from streamdenoise.backends import backend_class, unavailable_reason

    if backend not in (None, "auto"):
        neural = backend_class(backend).neural  # UsageError for an unknown name
        if model == "auto" and not neural:
            raise UsageError(f"--model auto needs a neural backend, not {backend!r}")
        return backend, model or ("auto" if neural else None)
    if model not in (None, "auto"):  # asked for a model: no silent fallback to a classical one
        return fastest_backend(device, precision), model
    try:
        reason = unavailable_reason("torch") or _missing_weights()
    except Exception as err:  # a broken torch install must not break the default run
        reason = f"{type(err).__name__}: {err}"
    if reason is None or model == "auto":
        return fastest_backend(device, precision), "auto"
    log.warning("using %s; the trained model is not usable (%s)", FALLBACK_BACKEND, reason)
    return FALLBACK_BACKEND, None


def create_denoiser(
    backend: str | None = "auto",
    *,
    model: str | None = None,
    precision: str | None = None,
    device: str | None = "auto",
    threads: int | None = None,
    strength: float | None = None,
    engine_cache: Path | None = None,
    recalibrate: bool = False,
    still_camera: bool = False,
    two_pass: bool = False,
) -> Denoiser:
    """The denoiser a run uses: :func:`choose_backend`, then the backend created with only the
    settings given (each backend applies its own defaults to the rest). Model ``auto`` gives
    an :class:`~streamdenoise.auto.AutoDenoiser` over the shipped tiers on that backend: it
    runs the strongest tier until a pipeline tells it the source's rate and that frames may
    drop (then it calibrates and adapts); ``still_camera`` gives it the ladder for a camera
    that never moves (see :func:`streamdenoise.models.tiers.ladder`). ``two_pass`` runs one
    recurrent model forward and backward (:mod:`streamdenoise.backends.two_pass`): the model
    named, or the strongest tier, which nothing then adapts."""
    from streamdenoise.backends import create_backend

    name, model = choose_backend(backend, model, device, precision)
    if two_pass:
        from streamdenoise.backends.two_pass import TwoPassDenoiser
        from streamdenoise.models.tiers import shipped_ladder

        if model is None:
            raise UsageError(f"--two-pass runs a trained recurrent model, not {name}")
        if model == "auto":
            model = shipped_ladder()[-1].model_arg
    given = {
        "precision": precision,
        "device": None if device == "auto" else device,
        "threads": threads,
        "strength": strength,
        "engine_cache": engine_cache if name == "tensorrt" else None,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if model == "auto":
        from streamdenoise.auto import AutoDenoiser  # with torch: imported only for auto

        return AutoDenoiser(name, recalibrate=recalibrate, still_camera=still_camera, **given)
    created = create_backend(name, **given, **({"model": model} if model else {}))
    return TwoPassDenoiser(created) if two_pass else created


def _missing_weights() -> str | None:
    """Why no trained model is installed, or None when a weights file is there (a corrupt
    file is not hidden behind a fallback: loading it gives a clear error)."""
    from streamdenoise.models import WEIGHTS_DIR

    return None if any(WEIGHTS_DIR.glob("*.pt")) else f"no trained model weights in {WEIGHTS_DIR}"
