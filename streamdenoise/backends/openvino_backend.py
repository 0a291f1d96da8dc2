"""OpenVINO on the CPU: the exported graph compiled per frame size, fp32, bf16 or int8.

The model is reshaped to the exact (padded) frame size and compiled with the LATENCY
performance hint, one compiled model per size; static shapes let the CPU plugin pick its
fastest kernels. bf16 goes through ``INFERENCE_PRECISION_HINT`` and needs a CPU with bf16
instructions (AVX512-BF16 or AMX); where the CPU has them it is the default
(:mod:`streamdenoise.runtime`). int8 runs the calibrated QDQ export shipped with the package
(opt-in: faster, a little less clean; figures in ``benchmarks/results/bench_int8.md``).

Per-frame models take and give uint8 frames as they are (H×W×3 RGB): the conversion to the
graph's float NCHW and back is compiled into the graph (OpenVINO's pre/post-processing),
where it runs on every core beside the network instead of costing ~12 ms of one core per
720p frame on the host (``benchmarks/results/conversion_cost.md``). So do recurrent models
aligned by dense flow, whose graph also moves the state along the host's flow (GridSample)
and gives it back without the concatenation the export ends in (:func:`_with_state_warp`):
the host only measures the flow. Other recurrent models keep float frames.

A pipeline hands a per-frame model two frames at a time on two or more cores
(:meth:`~streamdenoise.backends.neural.NeuralDenoiser.submit`): that graph is compiled with
two streams, each frame on its own, so the cores never wait on each other inside a layer
(:func:`streamdenoise.runtime.frames_in_flight`). ``serve`` runs single-frame calls of
different cameras on it the same way (``process_batch(..., overlap=True)``). Single calls
(``process``) keep the one-stream LATENCY graph.
"""

from __future__ import annotations

import functools
import queue
import threading
from pathlib import Path

import numpy as np

from streamdenoise.backends.neural import NeuralDenoiser
from streamdenoise.backends.onnxruntime_backend import feeds, missing_package, model_onnx
from streamdenoise.errors import BackendUnavailable

OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
INT8 = "int8"


class OpenVINOGraph:
    """Compiled models and infer requests for one exported graph, keyed by input shape."""

    #: One compile at a time in the process: threads calling a parallel graph at once compile
    #: each shape once between them, and its first call runs alone (see :meth:`_compile`).
    _compiling = threading.Lock()

    def __init__(
        self, onnx_path: Path, precision: str, threads: int | None = None, warps_state=False
    ) -> None:
        import openvino as ov

        self.core = ov.Core()
        if precision == INT8:  # the layers left float run in bf16 where the CPU has it
            precision = "bf16" if self.has_bf16() else "fp32"
        if precision == "bf16":
            self.check_bf16()
        self.model = self.core.read_model(str(onnx_path))
        self.precision_hint = OV_PRECISION[precision]
        self.threads = threads
        #: The recurrent state is moved along a ``flow`` input inside the graph, and given
        #: back as two outputs (see :func:`_with_state_warp`).
        self.warps_state = warps_state
        #: Idle infer requests per compiled shape: one, or one per stream of a parallel graph.
        self.requests: dict[tuple, queue.SimpleQueue] = {}

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

    def compile_config(self, streams: int) -> dict:
        """One stream: the lowest latency per call. Several: one call per stream at a time,
        the threads split between them (calls of different frames overlap)."""
        config: dict = {"INFERENCE_PRECISION_HINT": self.precision_hint}
        if streams == 1:
            config["PERFORMANCE_HINT"] = "LATENCY"
        else:
            config["NUM_STREAMS"] = streams
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        return config

    def prepare(
        self, batch: int, height: int, width: int, frames_u8: bool = False, streams: int = 1
    ) -> None:
        """Compile for (batch, height, width); ``frames_u8``: the frame goes in as uint8
        N×H×W×3 and the image comes out so (per-frame models, and recurrent ones whose graph
        moves the state); ``streams``: calls that may run at once."""
        key = (batch, height, width, frames_u8, streams)
        with self._compiling:
            if key not in self.requests:
                self.requests[key] = self._compile(*key)

    def _compile(
        self, batch: int, height: int, width: int, frames_u8: bool, streams: int
    ) -> queue.SimpleQueue:
        """The idle infer requests of a newly compiled model (see :meth:`prepare`)."""
        model = self.model.clone()
        # channels are static in the export (3, or the model's state channels for prev)
        model.reshape(
            {
                i.get_any_name(): [batch, 3, 1, 1]
                if i.get_any_name() == "sigma"
                else [batch, i.get_partial_shape()[1].get_length(), height, width]
                for i in model.inputs
            }
        )
        if self.warps_state:
            model = _with_state_warp(model)
        if frames_u8:
            model = _with_uint8_frames(model)
        compiled = self.core.compile_model(model, "CPU", self.compile_config(streams))
        idle: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(streams):
            idle.put(compiled.create_infer_request())
        # One call now, alone: the bindings set up their numpy glue on the first call, and two
        # threads doing that at once can deadlock on the GIL (calls of a parallel graph, or of
        # two graphs, each on a thread of its own).
        request = idle.get()
        zeros = {
            port.get_any_name(): np.zeros(
                list(port.get_shape()), port.get_element_type().to_dtype()
            )
            for port in compiled.inputs
        }
        request.infer(zeros, share_inputs=True)
        request.get_output_tensor(0).data.copy()
        idle.put(request)
        return idle

    def __call__(self, feeds: dict[str, np.ndarray], streams: int = 1):
        """Run the graph; with ``streams`` > 1, safe to call from that many threads at once.

        Returns the output; where the graph moves the state, (the state, the image): the
        image uint8 N×H×W×3 with uint8 frames, else the state itself."""
        noisy = feeds["noisy"]
        frames_u8 = noisy.dtype == np.uint8
        if frames_u8:  # N×H×W×3
            batch, height, width = noisy.shape[:3]
        else:  # N×3×H×W
            batch, _, height, width = noisy.shape
        key = (batch, height, width, frames_u8, streams)
        if key not in self.requests:
            self.prepare(*key)
        idle = self.requests[key]
        request = idle.get()
        try:
            request.infer(feeds, share_inputs=True)
            # Output tensors are reused by the next infer (whose ``prev`` may be this output).
            if not self.warps_state:
                return request.get_output_tensor(0).data.copy()
            image, average, *converted = (t.data for t in request.output_tensors)
            state = np.concatenate([image, average], axis=1)
            return state, (converted[0].copy() if converted else state)
        finally:
            idle.put(request)


def _with_state_warp(model):
    """``model`` (a recurrent export reshaped to one size) moving its ``prev`` input along a
    ``flow`` input itself: N×H×W×2 float32, where each pixel of the current frame was in the
    previous one (:func:`~streamdenoise.models.motion.warp_state`'s convention). Bilinear
    GridSample with replicated borders, as the host's warp samples, in the plugin's vector
    kernel on every core instead of one OpenCV remap per state channel on the host.

    The state also comes out as its two halves, the image and the running average, instead
    of their concatenation, which the plugin runs as a reference kernel and reorders back to
    planar (7–16 ms of a 720p bf16 call in its per-node profile); the host joins them in one
    copy (``benchmarks/results/recurrent_host_path_xeon-amx.md``)."""
    import openvino as ov
    from openvino import opset13

    prev = next(p for p in model.get_parameters() if p.get_friendly_name() == "prev")
    batch, _, height, width = (d.get_length() for d in prev.get_partial_shape())
    users = list(prev.output(0).get_target_inputs())
    flow = opset13.parameter([batch, height, width, 2], ov.Type.f32, name="flow")
    flow.output(0).set_names({"flow"})
    # pixels → GridSample's [-1, 1] with align_corners: x' = (x + dx)·2/(W−1) − 1
    scale = np.array([2 / max(width - 1, 1), 2 / max(height - 1, 1)], np.float32)
    xs = np.arange(width, dtype=np.float32) * scale[0] - 1
    ys = np.arange(height, dtype=np.float32) * scale[1] - 1
    identity = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None]), -1)[None]
    grid = opset13.add(opset13.multiply(flow, scale), identity)
    attributes = {"align_corners": True, "mode": "bilinear", "padding_mode": "border"}
    warped = opset13.grid_sample(prev, grid, attributes)
    for user in users:
        user.replace_source_output(warped.output(0))
    (result,) = model.get_results()
    joined = result.input_value(0).get_node()
    if joined.get_type_name() != "Concat" or len(joined.inputs()) != 2:
        raise ValueError("a recurrent export ends in the concatenation of image and average")
    halves = [opset13.result(joined.input_value(i)) for i in range(2)]
    return ov.Model(halves, [*model.get_parameters(), flow], model.get_friendly_name())


def _with_uint8_frames(model):
    """``model`` taking ``noisy`` as uint8 NHWC (0–255) and giving its image output as uint8
    NHWC, rounded and clipped as the host would (x·255 + ½, truncated, within 0–255). A
    graph that gives a recurrent state's halves (:func:`_with_state_warp`) keeps them float
    and gives the image a third time, as uint8."""
    import openvino as ov
    from openvino import opset13
    from openvino.preprocess import PrePostProcessor

    if len(model.outputs) > 1:
        model.add_results([opset13.result(model.get_results()[0].input_value(0))])
    ppp = PrePostProcessor(model)
    frame = ppp.input("noisy")
    frame.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    frame.model().set_layout(ov.Layout("NCHW"))
    # transposed while still uint8, as the image on the way out: for a recurrent graph the
    # plugin otherwise transposes the float frame (0.75 ms of a 720p call)
    frame.preprocess().convert_layout([0, 3, 1, 2]).convert_element_type(ov.Type.f32).scale(255.0)

    def to_8bit(node):
        scaled = opset13.add(opset13.multiply(node, np.float32(255)), np.float32(0.5))
        return opset13.clamp(scaled, 0.0, 255.0).output(0)

    image = ppp.output(len(model.outputs) - 1)
    # rounded to uint8 first, then transposed: the plugin's float transpose of a whole frame
    # is a reference (non-vectorised) kernel, four times the bytes of the uint8 one
    image.postprocess().custom(to_8bit).convert_element_type(ov.Type.u8).convert_layout(
        [0, 2, 3, 1]
    )
    return ppp.build()


class OpenVINODenoiser(NeuralDenoiser):
    name = "openvino"
    runs_export = True
    runs_in_parallel = True
    flow_state_in_graph = True  # see _with_state_warp

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return missing_package(("onnx", "openvino"))

    def _setup(self) -> None:
        if self.precision == INT8 and self.export is None:
            from streamdenoise.models.onnx import find_int8_onnx

            self.onnx_path = find_int8_onnx(Path(self.model).stem, self.net)
        else:
            self.onnx_path = model_onnx(self)
        self.graph = OpenVINOGraph(self.onnx_path, self.precision, self.threads, self.warps_state)

    def prepare(self, width: int, height: int) -> None:
        super().prepare(width, height)
        m = self.multiple
        size = (-(-height // m) * m, -(-width // m) * m)
        self.graph.prepare(1, *size, self._frames_u8, self.frames_in_flight)

    @property
    def _frames_u8(self) -> bool:
        """uint8 frames cross into the graph as they are (their conversion is compiled in)."""
        return not self.temporal or self.warps_state

    def _infer(self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None, flow=None):
        named = feeds(noisy, sigma, prev)
        if self.warps_state:  # a graph call without motion (bench --batch) moves nothing
            shape = (noisy.shape[0], *(prev.shape[-2:]), 2)
            named["flow"] = np.zeros(shape, np.float32) if flow is None else flow
        return self.graph(named)

    def _split_output(self, out) -> tuple:
        return out if isinstance(out, tuple) else (out, out)

    def _infer_parallel(self, noisy: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        return self.graph(feeds(noisy, sigma, None), self.frames_in_flight)

    def _graph_input(self, image: np.ndarray, scale: np.float32):
        """uint8 frames go in as they are (reflect-padded) where the graph converts them."""
        if not self._frames_u8 or image.dtype != np.uint8:
            return super()._graph_input(image, scale)
        m = self.multiple
        pad_h, pad_w = (-image.shape[0]) % m, (-image.shape[1]) % m
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        return image[None]

    def _graph_output(self, out, height: int, width: int, to_uint8: bool) -> np.ndarray:
        if out.dtype == np.uint8:  # converted by the graph (see _graph_input)
            return np.ascontiguousarray(out[0, :height, :width])
        return super()._graph_output(out, height, width, to_uint8)

    def describe(self) -> dict:
        return {**super().describe(), "onnx": str(self.onnx_path)}
