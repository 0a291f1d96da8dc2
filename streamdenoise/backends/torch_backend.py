"""PyTorch backend: CPU fp32 / bf16 (channels_last), CUDA fp16.

Default precision: bf16 on a CPU with native bf16 instructions (AVX512-BF16 or AMX) —
DESIGN.md measured bf16 + channels_last ≈1.7× faster than fp32 channels_last for a conv net
of this kind on the project's Zen 5 box, and on the shipped temporal model it costs 0.01 dB
(Vid4, σ=25: 27.69 vs 27.70 dB), because the residual add and the recurrent state stay fp32;
fp32 elsewhere. On a heavily loaded machine the gain can vanish (see the bench results).
fp16 on CUDA.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from streamdenoise.backends.neural import NeuralDenoiser
from streamdenoise.errors import BackendUnavailable

AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


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

    def default_precision(self) -> str:
        if self.device.startswith("cuda"):
            return "fp16"
        return "bf16" if cpu_has_bf16() else "fp32"

    def _check_precision(self, precision: str) -> None:
        super()._check_precision(precision)
        if self.device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise BackendUnavailable("device cuda requested but torch sees no CUDA GPU")
            if precision == "bf16":
                raise BackendUnavailable("use fp16 or fp32 on CUDA")
        elif self.device != "cpu":
            raise BackendUnavailable(f"torch backend runs on cpu or cuda, not {self.device}")
        elif precision == "fp16":
            raise BackendUnavailable("fp16 is for CUDA; on the CPU use bf16 or fp32")

    def _setup(self) -> None:
        self.net = self.net.to(self.device).to(memory_format=torch.channels_last).eval()
        self._device_type = "cuda" if self.device.startswith("cuda") else "cpu"

    def _to(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def _infer(self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        args = [self._to(noisy), torch.from_numpy(sigma).to(self.device)]
        if prev is not None:
            args.append(self._to(prev))
        dtype = AUTOCAST_DTYPE.get(self.precision)
        with torch.autocast(self._device_type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            out = self.net(*args)
        return out.float().contiguous().cpu().numpy()
