"""PyTorch backend: CPU fp32 / bf16 (channels_last), CUDA fp16 / fp32.

Default precision: bf16 on a CPU with native bf16 instructions (AVX512-BF16 or AMX) —
DESIGN.md measured bf16 + channels_last ≈1.7× faster than fp32 channels_last for a conv net
of this kind on the project's Zen 5 box, and on the shipped temporal model it costs 0.01 dB
(Vid4, σ=25: 27.69 vs 27.70 dB), because the residual add and the recurrent state stay fp32;
fp32 elsewhere. On a heavily loaded machine the gain can vanish (see the bench results).

Device: with no ``device`` (or ``auto``) the backend runs on CUDA when torch sees a GPU and
the precision is not a CPU one (bf16), and always for fp16; otherwise on the CPU. On CUDA
only uint8 frames cross the bus: the float conversion, padding, clipping and the recurrent
state live on the GPU, and cuDNN picks its convolution algorithms once per frame size
(``cudnn.benchmark``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from streamdenoise.backends.neural import NeuralDenoiser
from streamdenoise.errors import BackendUnavailable

AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU_ONLY_PRECISIONS = ("bf16",)


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU executes bf16 natively (otherwise bf16 is emulated and slow)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class TorchDenoiser(NeuralDenoiser):
    name = "torch"
    precisions = ("fp32", "bf16", "fp16")

    def default_device(self, precision: str | None) -> str:
        if precision == "fp16":
            return "cuda"
        if precision in CPU_ONLY_PRECISIONS or not torch.cuda.is_available():
            return "cpu"
        return "cuda"

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def default_precision(self) -> str:
        if self.on_cuda:
            return "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"

    def _check_precision(self, precision: str) -> None:
        super()._check_precision(precision)
        if self.on_cuda:
            if precision in CPU_ONLY_PRECISIONS:
                raise BackendUnavailable(f"{precision} is a CPU precision; on CUDA use fp16, fp32")
            if not torch.cuda.is_available():
                raise BackendUnavailable(
                    f"{precision} on {self.device} needs an NVIDIA GPU that torch can use, and "
                    f"torch {torch.__version__} sees none; on the CPU use bf16 or fp32"
                )
        elif self.device != "cpu":
            raise BackendUnavailable(f"torch backend runs on cpu or cuda[:N], not {self.device}")
        elif precision == "fp16":
            raise BackendUnavailable("fp16 is for CUDA; on the CPU use bf16 or fp32")

    def _setup(self) -> None:
        self.net = self.net.to(self.device).to(memory_format=torch.channels_last).eval()
        self._device_type = "cuda" if self.on_cuda else "cpu"
        #: Convert frames where the network runs (on by default on CUDA; tests turn it on on
        #: the CPU to check this path against the host one).
        self.frames_on_device = self.on_cuda
        if self.threads and not self.on_cuda:
            torch.set_num_threads(self.threads)  # process-wide, like torch itself
        if self.on_cuda:
            torch.backends.cudnn.benchmark = True
            if self.precision == "fp32":  # fp32 means fp32: no TF32 convolutions (process-wide)
                torch.backends.cudnn.allow_tf32 = False

    def _tensor(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(array, torch.Tensor):
            return array
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last)

    def _forward(self, *args: torch.Tensor) -> torch.Tensor:
        dtype = AUTOCAST_DTYPE.get(self.precision)
        with torch.autocast(self._device_type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            return self.net(*args)

    @torch.inference_mode()
    def _infer(self, noisy, sigma: np.ndarray, prev):
        args = [self._tensor(noisy), self._tensor(sigma)]
        if prev is not None:
            args.append(self._tensor(prev))
        out = self._forward(*args).float()
        # On CUDA the output stays there: it is the next frame's ``prev`` and is converted
        # to uint8 there too (see _graph_output).
        return out if isinstance(noisy, torch.Tensor) else out.cpu().numpy()

    # With frames_on_device only uint8 frames cross the bus: conversion, padding, clipping and
    # the recurrent state stay on the GPU.
    @torch.inference_mode()
    def _graph_input(self, image: np.ndarray, scale: np.float32):
        if not self.frames_on_device:
            return super()._graph_input(image, scale)
        height, width = image.shape[:2]
        m = self.multiple
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = (x.permute(2, 0, 1)[None].float() * float(scale)).contiguous()
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return x.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def _graph_output(self, out, height: int, width: int, to_uint8: bool) -> np.ndarray:
        if not isinstance(out, torch.Tensor):
            return super()._graph_output(out, height, width, to_uint8)
        image = out[0, :3, :height, :width].permute(1, 2, 0)
        if to_uint8:
            image = (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        return image.contiguous().cpu().numpy()

    def graph_call(
        self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None
    ) -> Callable[[], object]:
        if not self.on_cuda:
            return super().graph_call(noisy, sigma, prev)
        staged = [self._tensor(a) for a in (noisy, sigma) + ((prev,) if prev is not None else ())]

        def run_on_gpu() -> None:
            with torch.inference_mode():
                self._forward(*staged)
            torch.cuda.synchronize(self.device)

        return run_on_gpu

    def state_array(self) -> np.ndarray | None:
        state = self._state
        return state.cpu().numpy() if isinstance(state, torch.Tensor) else super().state_array()

    def describe(self) -> dict:
        info = super().describe()
        if self.on_cuda:
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
