"""TensorRT on an NVIDIA GPU: an FP16 engine built from the ONNX export and cached in the
user cache folder (``--engine-cache DIR`` to choose another).

See :mod:`streamdenoise.backends.tensorrt_engine` for the cache key, the rebuild rules and the
buffer handling. The engine is (re)built or loaded in :meth:`prepare` for the padded frame
size; a frame size the current profile covers reuses the engine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from streamdenoise import artifacts, hardware
from streamdenoise.backends.neural import NeuralDenoiser
from streamdenoise.backends.onnxruntime_backend import feeds, model_onnx
from streamdenoise.errors import BackendUnavailable

INSTALL = "pip install 'streamdenoise[tensorrt]'"


def cuda_device_name() -> str | None:
    """Name of CUDA device 0; None when there is none."""
    devices = hardware.cuda_devices()
    return devices[0].name if devices else None


def _cuda_memory_available() -> bool:
    """Device buffers come from torch when it sees the GPU, else from cuda-python."""
    import torch

    return torch.cuda.is_available() or hardware.cudart() is not None


class TensorRTDenoiser(NeuralDenoiser):
    name = "tensorrt"
    runs_export = True
    reuses_output_buffers = True  # the runner's pinned output buffers alternate

    def __init__(self, *args: Any, engine_cache: Path | None = None, **kwargs: Any) -> None:
        #: Folder of built plans, shared by every process that runs the same model and GPU.
        self.cache_dir = Path(engine_cache) if engine_cache else artifacts.tensorrt_cache()
        super().__init__(*args, **kwargs)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("tensorrt") is None:
            if cuda_device_name() is None:
                return f"no CUDA device (TensorRT needs an NVIDIA GPU; then {INSTALL})"
            return f"tensorrt is not installed ({INSTALL})"
        if cuda_device_name() is None:
            return "no CUDA device (TensorRT needs an NVIDIA GPU and its driver)"
        if importlib.util.find_spec("onnx") is None or not _cuda_memory_available():
            return f"onnx or cuda-python is not installed ({INSTALL})"
        return None

    def _setup(self) -> None:
        import tensorrt as trt

        self.onnx_path = model_onnx(self)
        self.input_names = ["noisy", "sigma", "prev"] if self.temporal else ["noisy", "sigma"]
        self.key_fields = {
            "model": self.onnx_path.stem.rsplit("-", 1)[0],
            "model_hash": self._net_hash(),
            "gpu": cuda_device_name() or "?",
            "tensorrt": trt.__version__,
            "precision": self.precision,
        }
        self.key = None
        self.runner = None

    def _net_hash(self) -> str:
        if self.export is not None:
            return self.export.net_hash
        from streamdenoise.models.onnx import net_hash

        return net_hash(self.net)

    def prepare(self, width: int, height: int) -> None:
        super().prepare(width, height)
        self.prepare_batch(1, width, height)

    def prepare_batch(self, batch: int, width: int, height: int) -> None:
        """Load or build an engine whose profile covers (batch, padded size); allocate buffers."""
        from streamdenoise.backends.tensorrt_engine import (
            EngineKey,
            EngineRunner,
            Profile,
            load_or_build_engine,
        )

        m = self.multiple
        padded = (batch, -(-height // m) * m, -(-width // m) * m)
        if self.runner is not None and self.runner.shape == padded:
            return
        if self.key is None or not self.key.profile.covers(*padded):
            self.key = EngineKey(**self.key_fields, profile=Profile.for_size(*padded, m))
            self.engine = load_or_build_engine(
                self.onnx_path, self.key, self.input_names, self.cache_dir
            )
        self.close()
        self.runner = EngineRunner(self.engine, self.input_names, *padded)

    def _infer(self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None, flow=None):
        if self.runner is None or self.runner.shape != noisy.shape[:1] + noisy.shape[2:]:
            raise BackendUnavailable("tensorrt: prepare() was not called for this frame size")
        return self.runner(feeds(noisy, sigma, prev))

    def describe(self) -> dict:
        plan = self.key.plan_path(self.cache_dir) if self.key else None
        return {**super().describe(), "onnx": str(self.onnx_path), "plan": str(plan)}

    def close(self) -> None:
        if self.runner is not None:
            self._stream.recurrent = None  # it points into the runner's pinned buffers
            self.runner.close()
            self.runner = None
