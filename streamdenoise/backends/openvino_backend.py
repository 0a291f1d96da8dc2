"""OpenVINO on the CPU: the exported graph compiled per frame size, fp32, bf16 or int8.

The model is reshaped to the exact (padded) frame size and compiled with the LATENCY
performance hint, one compiled model per size; static shapes let the CPU plugin pick its
fastest kernels. bf16 goes through ``INFERENCE_PRECISION_HINT`` and needs a CPU with bf16
instructions (AVX512-BF16 or AMX); where the CPU has them it is the default
(:mod:`streamdenoise.runtime`). int8 runs the calibrated QDQ export shipped with the package
(opt-in: faster, a little less clean; figures in ``benchmarks/results/bench_int8.md``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from streamdenoise.backends.neural import NeuralDenoiser
from streamdenoise.backends.onnxruntime_backend import feeds, missing_package, model_onnx
from streamdenoise.errors import BackendUnavailable

OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
INT8 = "int8"


class OpenVINOGraph:
    """Compiled models and infer requests for one exported graph, keyed by input shape."""

    def __init__(self, onnx_path: Path, precision: str, threads: int | None = None) -> None:
        import openvino as ov

        self.core = ov.Core()
        if precision == INT8:  # the layers left float run in bf16 where the CPU has it
            precision = "bf16" if self.has_bf16() else "fp32"
        if precision == "bf16":
            self.check_bf16()
        self.model = self.core.read_model(str(onnx_path))
        self.input_names = [port.get_any_name() for port in self.model.inputs]
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": OV_PRECISION[precision],
        }
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.requests: dict[tuple[int, ...], object] = {}

    @staticmethod
    @functools.cache
    def has_bf16() -> bool:
        """Asked once per process: the default precision and every graph need the answer.

        The plugin lists BF16 even under an ``ONEDNN_MAX_CPU_ISA`` cap that forbids its
        kernels (compiling then fails), so the capped CPU probe has a say too."""
        import openvino as ov

        from streamdenoise import hardware

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return "BF16" in capabilities and hardware.cpu().bf16

    @classmethod
    def check_bf16(cls) -> None:
        if not cls.has_bf16():
            raise BackendUnavailable(
                "this CPU has no bf16 instructions (AVX512-BF16 or AMX); use --precision fp32"
            )

    def prepare(self, batch: int, height: int, width: int) -> None:
        shape = (batch, 3, height, width)
        if shape in self.requests:
            return
        # channels are static in the export (3, or the model's state channels for prev)
        channels = {
            i.get_any_name(): i.get_partial_shape()[1].get_length() for i in self.model.inputs
        }
        self.model.reshape(
            {
                name: [batch, 3, 1, 1]
                if name == "sigma"
                else [batch, channels[name], height, width]
                for name in self.input_names
            }
        )
        compiled = self.core.compile_model(self.model, "CPU", self.config)
        self.requests[shape] = compiled.create_infer_request()

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch, _, height, width = feeds["noisy"].shape
        self.prepare(batch, height, width)
        request = self.requests[(batch, 3, height, width)]
        request.infer(feeds, share_inputs=True)
        # The output tensor is reused by the next infer (whose ``prev`` may be this output).
        return request.get_output_tensor(0).data.copy()


class OpenVINODenoiser(NeuralDenoiser):
    name = "openvino"
    runs_export = True

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return missing_package(("onnx", "openvino"))

    def _setup(self) -> None:
        if self.precision == INT8 and self.export is None:
            from streamdenoise.models.onnx import find_int8_onnx

            self.onnx_path = find_int8_onnx(Path(self.model).stem, self.net)
        else:
            self.onnx_path = model_onnx(self)
        self.graph = OpenVINOGraph(self.onnx_path, self.precision, self.threads)

    def prepare(self, width: int, height: int) -> None:
        super().prepare(width, height)
        m = self.multiple
        self.graph.prepare(1, -(-height // m) * m, -(-width // m) * m)

    def _infer(self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        return self.graph(feeds(noisy, sigma, prev))

    def describe(self) -> dict:
        return {**super().describe(), "onnx": str(self.onnx_path)}
