"""ONNX Runtime on the CPU: the exported graph with every graph optimisation, one thread per
physical core (hyper-threads only contend for the same FMA units in conv-heavy nets), fp32."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from streamdenoise import hardware
from streamdenoise.backends.neural import NeuralDenoiser


class OrtGraph:
    """An ONNX Runtime session for one exported model, CPU execution provider."""

    def __init__(self, onnx_path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["denoised"], feeds)[0]


def missing_package(modules: tuple[str, ...], extra: str | None = None) -> str | None:
    """One line naming the first module that is not installed and how to install it."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            how = f"pip install 'streamdenoise[{extra}]'" if extra else "pip install streamdenoise"
            return f"{module} is not installed ({how})"
    return None


def model_onnx(denoiser: NeuralDenoiser) -> Path:
    """The up-to-date export of the denoiser's network (exported on the fly if missing)."""
    if denoiser.export is not None:
        return denoiser.export.path
    from streamdenoise.models import weights_path
    from streamdenoise.models.onnx import find_or_export_onnx

    model = denoiser.model
    return find_or_export_onnx(Path(model).stem, denoiser.net, weights_path(model))


def feeds(noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None) -> dict[str, np.ndarray]:
    named = {"noisy": noisy, "sigma": sigma}
    if prev is not None:
        named["prev"] = prev
    return named


class OnnxRuntimeDenoiser(NeuralDenoiser):
    name = "onnxruntime"
    runs_export = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return missing_package(("onnx", "onnxruntime"), "onnx")

    def _setup(self) -> None:
        self.onnx_path = model_onnx(self)
        self.threads = self.threads or hardware.cpu().physical_cores
        self.graph = OrtGraph(self.onnx_path, self.threads)

    def _infer(self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None, flow=None):
        return self.graph(feeds(noisy, sigma, prev))

    def describe(self) -> dict:
        return {**super().describe(), "onnx": str(self.onnx_path), "threads": self.threads}
