"""PyTorch backend: CPU fp32 / bf16 (channels_last), CUDA fp16 / fp32.

Device and default precision follow :mod:`streamdenoise.runtime`: CUDA in fp16 when a GPU is
usable, else the CPU in bf16 where it has native bf16 instructions (the residual add and the
recurrent state stay fp32, so bf16 costs next to nothing in quality — see
``benchmarks/results/quality``), else fp32. bf16 runs under autocast with channels_last
tensors, the layout oneDNN's fast convolution kernels use.

On CUDA only uint8 frames cross the bus: the float conversion, padding, clipping and the
recurrent state live on the GPU, and cuDNN picks its convolution algorithms once per frame
size (``cudnn.benchmark``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from streamdenoise.backends.neural import NeuralDenoiser

AUTOCAST_DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TorchDenoiser(NeuralDenoiser):
    name = "torch"

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

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
    def _infer(self, noisy, sigma: np.ndarray, prev, flow=None):
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
        state = self._stream.recurrent
        return state.cpu().numpy() if isinstance(state, torch.Tensor) else super().state_array()

    def describe(self) -> dict:
        info = super().describe()
        if self.on_cuda:
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info
