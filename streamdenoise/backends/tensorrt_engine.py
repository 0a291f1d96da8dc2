"""TensorRT engines for the ONNX export: build, cache, and run with no per-frame allocation.

Plans are cached under ``engines/cache/`` (the user cache for a read-only install) and named
by a key over everything that makes a plan invalid: the model's weights hash, the GPU name,
the TensorRT version, the precision and the optimisation profile. A different key is a
different file, so a change rebuilds; a cached file that fails to deserialise is rebuilt with
a warning. One timing cache per GPU and TensorRT version makes rebuilds fast.

Memory: pinned host buffers and device buffers are allocated once per engine shape; a frame
is two asynchronous host→device copies, one ``execute_async_v3`` and one device→host copy on
one CUDA stream. The recurrent state stays on the device: when the caller passes back the
array we returned, the previous output buffer is bound as ``prev`` (two output buffers used
in turn), so it never crosses the bus again.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from streamdenoise.errors import BackendUnavailable

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 2 << 30


@dataclass(frozen=True)
class Profile:
    """Optimisation profile over (batch, height, width); opt is the size asked for."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    @classmethod
    def for_size(cls, batch: int, height: int, width: int, multiple: int) -> Profile:
        return cls((1, multiple, multiple), (batch, height, width), (batch, height, width))

    def covers(self, batch: int, height: int, width: int) -> bool:
        shape = (batch, height, width)
        return all(lo <= v <= hi for lo, v, hi in zip(self.min, shape, self.max, strict=True))


@dataclass(frozen=True)
class EngineKey:
    model: str
    model_hash: str
    gpu: str
    tensorrt: str
    precision: str
    profile: Profile

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def plan_path(self, cache_dir: Path) -> Path:
        return cache_dir / f"{self.model}-{self.model_hash}-{self.digest()}.plan"

    def timing_cache_path(self, cache_dir: Path) -> Path:
        gpu = "".join(c if c.isalnum() else "_" for c in self.gpu)
        return cache_dir / f"timing-{gpu}-trt{self.tensorrt}.cache"


def build_plan(onnx_path: Path, key: EngineKey, input_names: list[str], cache_dir: Path) -> bytes:
    """Parse the ONNX file and build a serialized plan (minutes on first build)."""
    import tensorrt as trt

    builder = trt.Builder(_logger())
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, _logger())
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if key.precision == "fp16":
        fp16 = getattr(trt.BuilderFlag, "FP16", None)  # removed in TensorRT 11 (strong typing)
        if fp16 is None:
            raise BackendUnavailable(
                f"TensorRT {trt.__version__} has no FP16 builder flag; install tensorrt<11"
            )
        config.set_flag(fp16)
    timing_path = key.timing_cache_path(cache_dir)
    saved = timing_path.read_bytes() if timing_path.is_file() else b""
    # A damaged timing cache only costs build time: start an empty one.
    timing = config.create_timing_cache(saved) or config.create_timing_cache(b"")
    config.set_timing_cache(timing, ignore_mismatch=True)
    profile = builder.create_optimization_profile()
    # channels are static in the export: 3, or the model's state channels for prev
    channels = {
        network.get_input(i).name: network.get_input(i).shape[1] for i in range(network.num_inputs)
    }
    for name in input_names:
        if name == "sigma":
            lo, opt, hi = (
                (b, 3, 1, 1) for b in (key.profile.min[0], key.profile.opt[0], key.profile.max[0])
            )
        else:
            c = channels[name]
            lo, opt, hi = (
                (n, c, h, w) for n, h, w in (key.profile.min, key.profile.opt, key.profile.max)
            )
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    log.warning(
        "building a TensorRT %s engine for %s (first use; minutes)", key.precision, key.model
    )
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendUnavailable(f"TensorRT failed to build an engine for {onnx_path}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@functools.cache
def _logger():
    """TensorRT keeps one logger per process: builder, parser and runtime share this one."""
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


@functools.cache
def _runtime():
    """One TensorRT runtime for the process; it must outlive every engine it deserialised."""
    import tensorrt as trt

    return trt.Runtime(_logger())


def load_or_build_engine(onnx_path: Path, key: EngineKey, input_names: list[str], cache_dir: Path):
    """A deserialised ICudaEngine: from the cached plan when valid, else freshly built."""
    runtime = _runtime()
    path = key.plan_path(cache_dir)
    if path.is_file():
        try:
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
        except Exception:  # TensorRT raises various types for bad data
            engine = None
        if engine is not None:
            return engine
        log.warning("cached TensorRT plan %s is corrupt or incompatible; rebuilding", path)
    plan = build_plan(onnx_path, key, input_names, cache_dir)
    _write_atomic(path, plan)
    path.with_suffix(".json").write_text(json.dumps(asdict(key), indent=2) + "\n")
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise BackendUnavailable("TensorRT could not load the engine it just built")
    return engine


# -- CUDA memory ------------------------------------------------------------------------------
class TorchCuda:
    """Pinned host / device buffers and a stream from torch's CUDA runtime."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.stream = torch.cuda.Stream()
        self.handle = self.stream.cuda_stream
        self._device: dict[int, object] = {}
        self._host: dict[int, object] = {}

    def host(self, shape: tuple[int, ...]) -> np.ndarray:
        tensor = self.torch.empty(shape, dtype=self.torch.float32, pin_memory=True)
        array = tensor.numpy()
        self._host[array.ctypes.data] = tensor
        return array

    def device(self, shape: tuple[int, ...]) -> int:
        tensor = self.torch.empty(shape, dtype=self.torch.float32, device="cuda")
        self._device[tensor.data_ptr()] = tensor
        return tensor.data_ptr()

    def to_device(self, dst: int, src: np.ndarray) -> None:
        with self.torch.cuda.stream(self.stream):
            self._device[dst].copy_(self._host[src.ctypes.data], non_blocking=True)

    def to_host(self, dst: np.ndarray, src: int) -> None:
        with self.torch.cuda.stream(self.stream):
            self._host[dst.ctypes.data].copy_(self._device[src], non_blocking=True)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def free(self) -> None:
        self.synchronize()
        self._device.clear()
        self._host.clear()


class CudaPython:
    """The same with cuda-python's runtime bindings (for torch builds without CUDA)."""

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self.cudart = cudart
        self.handle = int(self._check(cudart.cudaStreamCreate()))
        self._host_ptrs: list[int] = []
        self._device_ptrs: list[int] = []

    def _check(self, result):
        err, *values = result
        if int(err) != 0:
            raise BackendUnavailable(f"CUDA error {err}")
        return values[0] if values else None

    def host(self, shape: tuple[int, ...]) -> np.ndarray:
        nbytes = int(np.prod(shape)) * 4
        ptr = int(self._check(self.cudart.cudaMallocHost(nbytes)))
        self._host_ptrs.append(ptr)
        buffer = (ctypes.c_float * (nbytes // 4)).from_address(ptr)
        return np.frombuffer(buffer, np.float32).reshape(shape)

    def device(self, shape: tuple[int, ...]) -> int:
        ptr = int(self._check(self.cudart.cudaMalloc(int(np.prod(shape)) * 4)))
        self._device_ptrs.append(ptr)
        return ptr

    def _copy(self, dst: int, src: int, nbytes: int, kind) -> None:
        self._check(self.cudart.cudaMemcpyAsync(dst, src, nbytes, kind, self.handle))

    def to_device(self, dst: int, src: np.ndarray) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._copy(dst, src.ctypes.data, src.nbytes, kind)

    def to_host(self, dst: np.ndarray, src: int) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._copy(dst.ctypes.data, src, dst.nbytes, kind)

    def synchronize(self) -> None:
        self._check(self.cudart.cudaStreamSynchronize(self.handle))

    def free(self) -> None:
        self.synchronize()
        for ptr in self._device_ptrs:
            self.cudart.cudaFree(ptr)
        for ptr in self._host_ptrs:
            self.cudart.cudaFreeHost(ptr)
        self._device_ptrs.clear()
        self._host_ptrs.clear()
        if self.handle is not None:
            self.cudart.cudaStreamDestroy(self.handle)
            self.handle = None


def cuda_memory() -> TorchCuda | CudaPython:
    import torch

    return TorchCuda() if torch.cuda.is_available() else CudaPython()


class EngineRunner:
    """Runs one engine at one (batch, height, width) with buffers allocated up front."""

    def __init__(self, engine, input_names: list[str], batch: int, height: int, width: int):
        self.engine = engine
        self.context = engine.create_execution_context()
        self.memory = cuda_memory()
        image = (batch, 3, height, width)
        shapes = {name: (batch, 3, 1, 1) if name == "sigma" else image for name in input_names}
        # the output (and prev, which is the previous output) may carry more channels than
        # the image: a temporal model's state; the engine knows how many (a static dim)
        output = (batch, engine.get_tensor_shape("denoised")[1], height, width)
        if "prev" in shapes:
            shapes["prev"] = output
        self.host = {name: self.memory.host(shape) for name, shape in shapes.items()}
        self.device = {name: self.memory.device(shape) for name, shape in shapes.items()}
        self.outputs = [self.memory.device(output), self.memory.device(output)]
        self.host_out = [self.memory.host(output), self.memory.host(output)]
        self.turn = 0
        self.shape = (batch, height, width)
        self._check_io(engine, shapes, output)
        self.recurrent = "prev" in input_names

    def _check_io(self, engine, shapes: dict[str, tuple[int, ...]], output: tuple) -> None:
        """The buffers above are float32 of these shapes: say so if the engine disagrees."""
        import tensorrt as trt

        for name, shape in shapes.items():
            if not self.context.set_input_shape(name, shape):
                raise BackendUnavailable(f"TensorRT: {name} {shape} is outside the profile")
        for name in [*shapes, "denoised"]:
            if engine.get_tensor_dtype(name) != trt.float32:
                raise BackendUnavailable(f"TensorRT: {name} is not float32 in this engine")
        if tuple(self.context.get_tensor_shape("denoised")) != output:
            raise BackendUnavailable(f"TensorRT: output shape is not {output}")

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        previous = 1 - self.turn
        for name, value in feeds.items():
            if name == "prev" and value is self.host_out[previous]:
                # Our own last output: it is still on the device.
                self.context.set_tensor_address(name, self.outputs[previous])
                continue
            np.copyto(self.host[name], value)
            self.memory.to_device(self.device[name], self.host[name])
            self.context.set_tensor_address(name, self.device[name])
        self.context.set_tensor_address("denoised", self.outputs[self.turn])
        if not self.context.execute_async_v3(self.memory.handle):
            raise BackendUnavailable("TensorRT execution failed")
        result = self.host_out[self.turn]
        self.memory.to_host(result, self.outputs[self.turn])
        self.memory.synchronize()
        self.turn = previous
        return result

    def close(self) -> None:
        self.memory.free()
        self.context = None
