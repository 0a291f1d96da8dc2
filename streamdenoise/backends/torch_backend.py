"""PyTorch backend: CPU fp32 / bf16 (channels_last), CUDA fp16 / fp32.

Default precision: bf16 on a CPU with native bf16 instructions (AVX512-BF16 or AMX) —
DESIGN.md measured bf16 + channels_last ≈1.7× faster than fp32 channels_last for a conv net
of this kind on the project's Zen 5 box, and on the shipped temporal model it costs 0.01 dB
(Vid4, σ=25: 27.69 vs 27.70 dB), because the residual add and the recurrent state stay fp32;
fp32 elsewhere. On a heavily loaded machine the gain can vanish (see the bench results).

Device: with no ``device`` (or ``auto``) the backend runs on CUDA when torch sees a GPU and
the precision is not a CPU one (bf16), and always for fp16; otherwise on the CPU. On CUDA the
recurrent state stays on the GPU between frames (only the new frame goes up), and cuDNN picks
its convolution algorithms once per frame size (``cudnn.benchmark``).
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
        # The last output as handed back (numpy) and the same values still on the GPU: when
        # the base class feeds that array back as ``prev`` it is not uploaded again.
        self._resident: tuple[np.ndarray, torch.Tensor] | None = None
        if self.on_cuda:
            torch.backends.cudnn.benchmark = True
            if self.precision == "fp32":  # fp32 means fp32: no TF32 convolutions (process-wide)
                torch.backends.cudnn.allow_tf32 = False

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        if self._resident is not None and array is self._resident[0]:
            return self._resident[1]
        tensor = torch.from_numpy(array).to(self.device)
        return tensor.contiguous(memory_format=torch.channels_last)

    def _forward(self, *args: torch.Tensor) -> torch.Tensor:
        dtype = AUTOCAST_DTYPE.get(self.precision)
        with torch.autocast(self._device_type, dtype=dtype or torch.float32, enabled=bool(dtype)):
            return self.net(*args)

    @torch.inference_mode()
    def _infer(self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        args = [self._tensor(noisy), self._tensor(sigma)]
        if prev is not None:
            args.append(self._tensor(prev))
        out = self._forward(*args).float()
        result = out.cpu().numpy()
        self._resident = (result, out) if self.on_cuda and self.temporal else None
        return result

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

    def reset(self) -> None:
        super().reset()
        self._resident = None

    def describe(self) -> dict:
        info = super().describe()
        if self.on_cuda:
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
