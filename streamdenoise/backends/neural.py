"""Shared logic of every neural backend; subclasses only run the graph.

:class:`NeuralDenoiser` converts uint8 RGB frames to float NCHW, pads them to the multiple the
network needs (reflect padding, cropped back afterwards), estimates the per-channel noise
level of every frame (smoothed over time so the strength does not flicker), scales it by
``strength``, holds the recurrent state between frames, and resets it on ``reset()``, on a
frame-size change and on a detected scene cut.

A subclass implements :meth:`NeuralDenoiser._infer` — one call of the network — and may
override :meth:`_setup` to build it. Runtimes that run the ONNX export (``runs_export``) get
it and the model's architecture from :mod:`streamdenoise.artifacts` without loading the
weights through torch; ``self.net`` (the torch network) is loaded only when no export of these
weights exists yet, or for the torch runtime itself. Which device and precision a subclass
runs in is decided by :mod:`streamdenoise.runtime` from its ``name``.

Everything remembered about a stream lives in one :class:`StreamState`. ``process()`` keeps
one for the single stream it is fed; :meth:`NeuralDenoiser.process_batch` is the stateless
form — frames of many streams in, each with its own state, one graph call per frame size —
on which ``serve`` shares one denoiser between cameras; with an ``executor`` the per-stream
work of a batch runs on its threads.
"""

from __future__ import annotations

import functools
import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from streamdenoise import runtime
from streamdenoise.artifacts import Export, find_export
from streamdenoise.backends.base import Denoiser
from streamdenoise.errors import UsageError
from streamdenoise.models import DEFAULT_MODEL, load_model, weights_path
from streamdenoise.models.motion import MotionCompensator, padded_flow
from streamdenoise.models.nets import NetConfig, initial_state
from streamdenoise.models.noise import estimate_noise_sigma, monochrome_gain

# Mean absolute difference between 1/8-scale thumbnails (0–1 scale) above which two
# consecutive frames are treated as a cut. Thumbnails average 64 pixels, so even σ=50 noise
# moves them by < 0.01; ordinary motion stays well below this, a cut to another scene does not.
SCENE_CUT_THRESHOLD = 0.12
# Weight of the newest frame in the running noise-level estimate.
SIGMA_SMOOTHING = 0.25


@dataclass
class StreamState:
    """What a neural denoiser carries from one frame of a stream to the next.

    A fresh ``StreamState()`` means "nothing known": the first frame starts the stream.
    ``strength`` (None: the denoiser's own) lets streams sharing a denoiser differ.
    """

    strength: float | None = None
    #: The graph's recurrent output (1, C, H', W'): a host array, or a device tensor where
    #: the runtime keeps frames on its GPU.
    recurrent: object | None = None
    #: Smoothed per-channel noise level on the [0, 1] scale.
    sigma: np.ndarray | None = None
    #: 1/8-scale thumbnail of the last frame, for scene-cut detection.
    thumb: np.ndarray | None = None
    #: What motion compensation remembers of the last frame (grey frame or thumbnail).
    motion: np.ndarray | None = None
    size: tuple[int, int] | None = None
    scene_cuts: int = 0
    #: Which denoiser (runtime, model, precision) made ``recurrent`` and ``motion``: a state
    #: handed to another one (a shared ``--model auto`` that changed tier) starts afresh.
    owner: str | None = None

    def reset(self) -> None:
        """Forget the past (a reconnect, seek or size change); the counters stay."""
        self.recurrent = self.sigma = self.thumb = self.motion = None


class NeuralDenoiser(Denoiser):
    """Base of the torch / ONNX Runtime / OpenVINO / TensorRT backends."""

    name = "neural"  # a key of streamdenoise.runtime.RUNTIMES in every subclass
    #: True for runtimes that run the ONNX export rather than the torch network.
    runs_export = False
    neural = True

    def __init__(
        self,
        model: str | None = None,
        precision: str | None = None,
        strength: float = 1.0,
        device: str | None = None,
        sigma: float | None = None,
        threads: int | None = None,
    ) -> None:
        if strength < 0:
            raise UsageError(f"strength must be ≥ 0, got {strength}")
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be ≥ 1, got {threads}")
        #: CPU threads the runtime may use (None: its own choice); several streams on one
        #: machine each get a share instead of all fighting for every core.
        self.threads = threads
        self.model = model or DEFAULT_MODEL
        #: The export of these weights when the runtime runs one and it exists already.
        self.export: Export | None = None
        if self.runs_export:
            self.export = find_export(weights_path(self.model), int8=precision == "int8")
        if self.export is not None:
            self.net = None
            self.config = NetConfig.from_dict(self.export.config)
        else:
            self.net, _ = load_model(self.model)
            self.config = self.net.config
        self.temporal = self.config.temporal
        self.multiple = self.config.multiple
        self.strength = float(strength)
        self.sigma_hint = sigma
        if device in (None, "auto"):
            device = runtime.default_device(self.name, precision)
        self.device = device
        self.precision = precision or runtime.default_precision(self.name, device)
        runtime.check(self.name, self.device, self.precision)
        #: The state of the one stream ``process()`` serves.
        self._stream = StreamState()
        self._motion = MotionCompensator(self.config.motion) if self.temporal else None
        #: The graph moves the recurrent state along the host's dense flow (``_infer`` gets
        #: the flow, and ``prev`` as the last call left it): the host only measures motion.
        self.warps_state = (
            self.flow_state_in_graph and self.temporal and self.config.motion == "flow"
        )
        #: Threads for the per-stream work of a batch (None: the calling thread does it all).
        self.executor: Executor | None = None
        self._thread_motion = threading.local()
        if self.runs_in_parallel:
            self.frames_in_flight = runtime.frames_in_flight(
                self.name, self.device, self.temporal, self.threads
            )
        #: Runs the graph calls of submitted frames (made on the first one that overlaps).
        self._in_flight: ThreadPoolExecutor | None = None
        self._setup()

    # -- subclass interface ------------------------------------------------------------------
    def _setup(self) -> None:
        """Build the runtime graph (called once, at the end of __init__)."""

    #: True where the runtime's graph moves a flow-aligned recurrent state itself
    #: (:attr:`warps_state`).
    flow_state_in_graph = False

    @abstractmethod
    def _infer(
        self,
        noisy: np.ndarray,
        sigma: np.ndarray,
        prev: np.ndarray | None,
        flow: np.ndarray | None = None,
    ) -> np.ndarray:
        """Run the network once.

        ``noisy``: float32 (1, 3, H, W) in [0, 1], H and W multiples of ``self.multiple``.
        ``sigma``: float32 (1, 3, 1, 1), per-channel noise std on the [0, 1] scale, already
        scaled by strength. ``prev``: float32 (1, C, H, W), the recurrent state (the previous
        output, motion-compensated; after a reset ``noisy`` itself, once per 3 channels), or
        None for spatial models. Returns float32 (1, C, H, W), unclipped: the denoised image
        is its first 3 channels, and the whole of it becomes the next ``prev``. C is the
        model's ``state_channels`` (3 for spatial models). ``flow``: where
        :attr:`warps_state`, float32 (1, H, W, 2), the motion ``prev`` is still to be moved
        along (:func:`~streamdenoise.models.motion.warp_state`'s convention); else None.
        ``noisy`` and ``prev`` are what :meth:`_graph_input` and this method return: host
        arrays by default, GPU tensors where a subclass keeps the frame on the device.
        """

    def graph_call(
        self, noisy: np.ndarray, sigma: np.ndarray, prev: np.ndarray | None
    ) -> Callable[[], object]:
        """A call that runs the graph once on these inputs and returns when it has finished.

        ``bench --batch`` times it. Runtimes that can keep the inputs where the graph runs (a
        GPU) stage them once here, so the call measures the graph alone.
        """
        return functools.partial(self._infer, noisy, sigma, prev)

    #: True where ``_infer`` returns buffers the runtime reuses on a later call: a state
    #: shared between streams is then copied out of them.
    reuses_output_buffers = False
    #: True where the runtime can run graph calls of several frames at once
    #: (:meth:`_infer_parallel`); :func:`streamdenoise.runtime.frames_in_flight` decides how
    #: many a pipeline may submit.
    runs_in_parallel = False

    def _infer_parallel(self, noisy: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """A per-frame model's graph call that may run beside others (see :meth:`submit`)."""
        raise NotImplementedError

    # -- Denoiser ----------------------------------------------------------------------------
    def prepare(self, width: int, height: int) -> None:
        if self._stream.size != (width, height):
            self.reset()
            self._stream.size = (width, height)

    def reset(self) -> None:
        self._stream.reset()

    @property
    def scene_cuts(self) -> int:
        return self._stream.scene_cuts

    def describe(self) -> dict:
        return {
            **super().describe(),
            "model": self.model,
            "temporal": self.temporal,
            "strength": self.strength,
            "threads": self.threads,
            "frames_in_flight": self.frames_in_flight,
            "scene_cuts": self.scene_cuts,
        }

    def close(self) -> None:
        if self._in_flight is not None:  # the frames still in flight finish first
            self._in_flight.shutdown(wait=True)
            self._in_flight = None

    def process(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UsageError(f"expected an H×W×3 uint8 frame, got {image.shape} {image.dtype}")
        return self._denoise(image, to_uint8=True)

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        """Overlapping frames (``frames_in_flight`` > 1): the per-stream work — noise level,
        conversion — runs now, in frame order; the graph call and the output conversion run
        on a worker thread while the next frame is submitted."""
        if self.frames_in_flight == 1:
            return super().submit(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise UsageError(f"expected an H×W×3 uint8 frame, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        self.prepare(width, height)
        if self._strength(self._stream) == 0:
            return super().submit(image)
        noisy, sigma, *_ = self._graph_inputs(image, self._stream)
        if self._in_flight is None:
            self._in_flight = ThreadPoolExecutor(self.frames_in_flight, "denoise frame")
        return self._in_flight.submit(self._finish_frame, noisy, sigma, height, width)

    def _finish_frame(self, noisy: np.ndarray, sigma: np.ndarray, height: int, width: int):
        return self._graph_output(self._infer_parallel(noisy, sigma), height, width, True)

    def process_float(self, image: np.ndarray) -> np.ndarray:
        """Float H×W×3 RGB on the [0, 1] scale (may be unclipped) in, float out.

        The evaluation's ``--protocol float`` feeds unquantised noise through this path.
        """
        return self._denoise(image, to_uint8=False)

    def _denoise(self, image: np.ndarray, to_uint8: bool) -> np.ndarray:
        """uint8 (0–255) or float (0–1) H×W×3 in; uint8 or float H×W×3 out."""
        height, width = image.shape[:2]
        self.prepare(width, height)
        outputs, _ = self._run_batch([image], [self._stream], to_uint8, shared=False)
        return outputs[0]

    def process_batch(
        self,
        images: Sequence[np.ndarray],
        states: Sequence[StreamState],
        overlap: bool = False,
    ) -> tuple[list[np.ndarray], list[StreamState]]:
        """The stateless form of ``process``: ``images[i]`` (H×W×3 uint8 RGB) belongs to the
        stream whose state is ``states[i]``; returns the denoised frames and the states to
        pass with each stream's next frame. Frames of one padded size share one graph call;
        the streams never see each other. Used from one thread at a time, or with
        ``overlap`` from up to ``frames_in_flight`` threads at once (each call of other
        streams): a single frame then runs on the parallel graph (:meth:`_infer_parallel`),
        so that the calls do not fight over the cores."""
        if len(images) != len(states):
            raise ValueError("one state per frame")
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise UsageError(f"expected H×W×3 uint8 frames, got {image.shape} {image.dtype}")
        owner = f"{self.name}:{self.model}:{self.precision}"
        for image, state in zip(images, states, strict=True):
            size = (image.shape[1], image.shape[0])
            if state.size != size:
                state.reset()
                state.size = size
            elif state.owner not in (None, owner):  # another tier's state: only σ carries over
                sigma = state.sigma
                state.reset()
                state.sigma = sigma
            state.owner = owner
        parallel = overlap and self.frames_in_flight > 1 and len(images) == 1
        return self._run_batch(images, states, to_uint8=True, shared=True, parallel=parallel)

    def _run_batch(
        self,
        images: Sequence[np.ndarray],
        states: Sequence[StreamState],
        to_uint8: bool,
        shared: bool,
        parallel: bool = False,
    ) -> tuple[list[np.ndarray], list[StreamState]]:
        outputs: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        m = self.multiple
        for i, (image, state) in enumerate(zip(images, states, strict=True)):
            if self._strength(state) == 0:
                outputs[i] = image.copy()
            else:
                height, width = image.shape[:2]
                groups.setdefault((-(-height // m), -(-width // m)), []).append(i)
        run = self.executor.map if self.executor is not None else map
        for members in groups.values():
            # Per stream and independent (noise level, scene cut, motion, conversion): spread
            # over the executor's threads when there is one; the graph runs once for all.
            inputs = list(run(lambda i: self._graph_inputs(images[i], states[i]), members))
            xs, sigmas, prevs, flows = zip(*inputs, strict=True)
            prev = _stack(list(prevs)) if self.temporal else None
            flow = _stack(list(flows)) if self.warps_state else None
            if parallel:  # one frame of a per-frame model, beside other calls
                out = self._infer_parallel(xs[0], sigmas[0])
            else:
                out = self._infer(_stack(list(xs)), np.concatenate(sigmas), prev, flow)
            out, image_out = self._split_output(out)
            for k, i in enumerate(members):
                if self.temporal:
                    one, keep = out[k : k + 1], shared and self.reuses_output_buffers
                    states[i].recurrent = one.copy() if keep else one
            crop = functools.partial(self._batch_output, image_out, to_uint8)
            shapes = [images[i].shape[:2] for i in members]
            for i, image in zip(members, run(crop, range(len(members)), shapes), strict=True):
                outputs[i] = image
        return outputs, list(states)

    def _split_output(self, out) -> tuple:
        """(the recurrent state, what the image is cropped from) of one graph call's output:
        the same tensor, unless the runtime's graph hands the image over apart from the state
        (OpenVINO converts it to uint8 in the graph)."""
        return out, out

    def _batch_output(self, out, to_uint8: bool, k: int, shape: tuple[int, int]) -> np.ndarray:
        """Item ``k`` of a batched graph output as an H×W×3 frame of ``shape``."""
        return self._graph_output(out[k : k + 1], *shape, to_uint8)

    def _graph_inputs(self, image: np.ndarray, state: StreamState) -> tuple:
        """(noisy, sigma, prev, flow) of one stream's frame for the graph; ``state`` updated.
        ``flow`` is None unless the graph moves the state itself (:attr:`warps_state`)."""
        scale = np.float32(1 / 255) if image.dtype == np.uint8 else np.float32(1)
        self._detect_scene_cut(image, scale, state)
        sigma = self._noise_level(image, scale, state) * self._strength(state)
        x = self._graph_input(image, scale)
        prev, flow = self._aligned_state(image, x, scale, state) if self.temporal else (None, None)
        return x, sigma.reshape(1, 3, 1, 1).astype(np.float32), prev, flow

    def _compensator(self) -> MotionCompensator:
        """This thread's motion compensator: the flow estimator keeps buffers between calls,
        so threads of the executor each have their own (the result does not depend on it)."""
        if self.executor is None:
            return self._motion
        mine = getattr(self._thread_motion, "compensator", None)
        if mine is None:
            mine = self._thread_motion.compensator = MotionCompensator(self.config.motion)
        return mine

    def _strength(self, state: StreamState) -> float:
        return self.strength if state.strength is None else state.strength

    def _graph_input(self, image: np.ndarray, scale: np.float32):
        """The graph's ``noisy`` input: float (1, 3, H', W') on [0, 1], reflect-padded to the
        network's multiple. Runtimes on a GPU override this (and :meth:`_graph_output`) to
        convert there, so that only uint8 frames cross the bus."""
        height, width = image.shape[:2]
        m = self.multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        x = (image.astype(np.float32) * scale).transpose(2, 0, 1)[None]
        if pad_h or pad_w:
            return np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
        return np.ascontiguousarray(x)

    def _graph_output(self, out, height: int, width: int, to_uint8: bool) -> np.ndarray:
        """The graph's output cropped back to H×W×3: float, or clipped and rounded uint8.

        Always a new array: runtimes may hand back buffers they reuse (TensorRT's pinned
        output buffers alternate between frames)."""
        image = out[0, :3, :height, :width].transpose(1, 2, 0)
        return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8) if to_uint8 else image.copy()

    def carry_state(self, previous: NeuralDenoiser, last_image: np.ndarray | None) -> bool:
        """Continue the stream ``previous`` was denoising, from the next frame on (a switch
        between models of ``--model auto``). Always carried: the smoothed noise level, so the
        strength does not jump. The recurrent state too where it means the same thing — same
        network family and state channels on the same runtime — with the motion estimate
        re-seeded from ``last_image``; otherwise the state starts afresh (as after a cut).
        Returns True when the recurrent state was carried."""
        self.reset()
        mine, theirs = self._stream, previous._stream
        mine.sigma = None if theirs.sigma is None else theirs.sigma.copy()
        compatible = (
            self.temporal
            and previous.temporal
            and type(self) is type(previous)
            and type(self.net) is type(previous.net)
            and self.config.state_channels == previous.config.state_channels
        )
        if not compatible or theirs.recurrent is None or last_image is None:
            return False
        state = theirs.recurrent  # copied: runtimes may reuse their output buffers
        mine.recurrent = state.clone() if hasattr(state, "clone") else np.array(state)
        mine.thumb = theirs.thumb
        _, mine.motion = self._compensator().measure(None, last_image)
        return True

    def state_array(self) -> np.ndarray | None:
        """The recurrent state (the last float output) as a host array, for tests and tools."""
        state = self._stream.recurrent
        return None if state is None else np.array(state)  # a copy, see above

    # -- helpers -----------------------------------------------------------------------------
    def _aligned_state(self, image: np.ndarray, x, scale: np.float32, state: StreamState):
        """(the recurrent input, the flow the graph is still to move it along): the state
        moved onto the current frame, or after a reset the noisy frame itself; the flow is
        None unless the graph moves the state (:attr:`warps_state`; zero after a reset)."""
        motion, state.motion = self._compensator().measure(state.motion, image)
        if state.recurrent is None or motion is None:
            if x.dtype == np.uint8:  # the graph converts the frame; the state needs it float
                x = NeuralDenoiser._graph_input(self, image, scale)
            prev = initial_state(x, self.config.state_channels)
            return prev, (np.zeros((1, *x.shape[-2:], 2), np.float32) if self.warps_state else None)
        if self.warps_state:
            return state.recurrent, padded_flow(motion, state.recurrent.shape[-2:])
        return self._motion.apply(state.recurrent, x, motion), None

    def _noise_level(self, image: np.ndarray, scale: np.float32, state: StreamState) -> np.ndarray:
        """Per-channel σ on the [0, 1] scale the network is given: the hint if given, else a
        smoothed estimate; raised for a monochrome frame, whose noise is the same in every
        channel (``noise.MONOCHROME_NOISE_GAIN``; a camera switching to IR at dusk is
        followed from that frame on)."""
        gain = np.float32(monochrome_gain(image))
        if self.sigma_hint is not None:
            return np.full(3, self.sigma_hint / 255 * gain, np.float32)
        est = estimate_noise_sigma(image).astype(np.float32) * scale
        if state.sigma is None:
            state.sigma = est
        else:
            state.sigma = (1 - SIGMA_SMOOTHING) * state.sigma + SIGMA_SMOOTHING * est
        return state.sigma * gain

    def _detect_scene_cut(self, image: np.ndarray, scale: np.float32, state: StreamState) -> None:
        if not self.temporal:
            return
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        thumb = small.astype(np.float32) * scale
        if state.thumb is not None and np.abs(thumb - state.thumb).mean() > SCENE_CUT_THRESHOLD:
            state.recurrent = None
            state.sigma = None
            state.scene_cuts += 1
        state.thumb = thumb


def _stack(parts: list):
    """One (N, C, H, W) batch from (1, C, H, W) host arrays or device tensors."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import torch

    return torch.cat(parts)
