"""Motion compensation of the recurrent state, for models trained with it
(every temporal model; ``NetConfig.motion`` says how).

A causal recurrent denoiser can only average what stays in place. Cameras pan, shake and get
nudged by wind, and people walk, so before the state is handed back to the network it is
moved onto the current frame, using motion measured between consecutive *noisy* frames
(known before the network runs, and the same in training as in the field):

- ``"shift"``: the frame's global translation, an integer shift found by phase correlation
  of two small grey thumbnails (downscaling averages the noise away; the sub-pixel peak is
  scaled back to full resolution). Cheap; local motion is left to the network's gate.
- ``"flow"``: dense optical flow (DIS, Kroeger et al., ECCV 2016, as OpenCV implements it)
  on full-resolution grey frames, and a bilinear warp of the state. It costs most of the
  CPU time the network does, and lines up what one translation cannot: walkers, parallax,
  zooms (quality of both: docs/quality.md; cost: benchmarks/results/bench_cpu.md).

The same functions run in training (on torch patches) and in every backend (on host arrays
or CUDA tensors), so a network learns with the alignment it gets in the field (host arrays
are warped by OpenCV, tensors by torch: the same bilinear sampling up to OpenCV's 1/32-pixel
rounding).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from streamdenoise.models.nets import initial_state

# DIS settings: the "fast" preset's 8-px patches and 16 descent steps, searched down to half
# resolution (finest scale 1; the preset stops at a quarter, 3x faster but 0.4 dB of
# `temporal`'s PSNR lower on slow, detailed motion) with no variational refinement: as clean
# as the "medium" preset on moving video at a third of its time, and cleaner than plain
# "fast". Patches every 6 px rather than the preset's 4: the patch count is most of DIS's
# time, and 6 takes ~45 % less of it for 0.01-0.04 dB (benchmarks/results/flow_settings.md).
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_FAST
FLOW_FINEST_SCALE = 1
FLOW_REFINEMENT_ITERATIONS = 0
FLOW_PATCH_STRIDE = 6
# Thumbnails are about this many pixels on their short side (never upscaled): enough
# texture for a sharp correlation peak at a small fraction of the flow's cost.
THUMB_SHORT_SIDE = 160
# Below this phase-correlation peak the estimate is noise (flat or fully changed content).
MIN_RESPONSE = 0.05
# Larger estimated shifts (as a fraction of the short side) are treated as unreliable.
MAX_SHIFT_FRACTION = 0.25

_windows: dict[tuple[int, int], np.ndarray] = {}


def thumbnail_factor(height: int, width: int) -> int:
    return max(1, min(height, width) // THUMB_SHORT_SIDE)


def grey_thumbnail(image: np.ndarray) -> np.ndarray:
    """An H×W×3 RGB frame (uint8, or float on any scale) as a float32 grey thumbnail."""
    h, w = image.shape[:2]
    f = thumbnail_factor(h, w)
    if image.dtype not in (np.uint8, np.float32):
        image = image.astype(np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if f > 1:
        grey = cv2.resize(grey, (w // f, h // f), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def global_shift(prev_thumb: np.ndarray, thumb: np.ndarray, height: int) -> tuple[int, int]:
    """The integer full-resolution (dy, dx) that moves the previous frame onto the current one.

    ``height``: the full-resolution frame height the thumbnails were made from (it fixes the
    scale factor). Returns (0, 0) when the correlation is too weak to trust.
    """
    if prev_thumb.shape != thumb.shape:
        return 0, 0
    window = _windows.get(thumb.shape)
    if window is None:
        window = _windows[thumb.shape] = cv2.createHanningWindow(thumb.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(prev_thumb, thumb, window)
    f = height / thumb.shape[0]
    limit = MAX_SHIFT_FRACTION * min(thumb.shape)
    if response < MIN_RESPONSE or max(abs(dx), abs(dy)) > limit:
        return 0, 0
    return round(dy * f), round(dx * f)


def shift_state(state, frame, dy: int, dx: int):
    """``state`` (…, C, H, W) moved by (dy, dx); uncovered pixels come from ``frame``.

    Works on numpy arrays and torch tensors alike. ``frame`` is the current noisy frame
    (…, 3, H, W): where the past has no pixel it stands in for every 3-channel group of the
    state, as it does for the whole frame after a reset. One pass over the state.
    """
    if dy == 0 and dx == 0:
        return state
    h, w = state.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return initial_state(frame, state.shape[-3])
    out = np.empty_like(state) if isinstance(state, np.ndarray) else torch.empty_like(state)
    out[..., _target(dy, h), _target(dx, w)] = state[..., _source(dy, h), _source(dx, w)]
    rows = slice(0, dy) if dy > 0 else slice(h + dy, h)  # empty when dy == 0
    cols = slice(0, dx) if dx > 0 else slice(w + dx, w)
    for c in range(0, state.shape[-3], 3):
        out[..., c : c + 3, rows, :] = frame[..., rows, :]
        out[..., c : c + 3, :, cols] = frame[..., :, cols]
    return out


def _source(shift: int, size: int) -> slice:
    return slice(0, size - shift) if shift >= 0 else slice(-shift, size)


def _target(shift: int, size: int) -> slice:
    return slice(shift, size) if shift >= 0 else slice(0, size + shift)


def grey_frame(image: np.ndarray) -> np.ndarray:
    """An H×W×3 RGB frame (uint8, or float on [0, 1]) as uint8 grey, what DIS takes."""
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """Dense flow between consecutive grey frames; one per stream (DIS keeps buffers)."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(FLOW_PRESET)
        self._dis.setFinestScale(FLOW_FINEST_SCALE)
        self._dis.setVariationalRefinementIterations(FLOW_REFINEMENT_ITERATIONS)
        self._dis.setPatchStride(FLOW_PATCH_STRIDE)

    def flow(self, prev_grey: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 (dx, dy): where each pixel of the current frame was before."""
        if prev_grey.shape != grey.shape:
            return np.zeros((*grey.shape, 2), np.float32)
        return self._dis.calc(grey, prev_grey, None)


def host_settings(motion: str) -> str | None:
    """The host-side estimator's settings for a model aligned by ``motion`` (None: the host
    measures nothing): they decide how long such a tier takes, so a calibration is keyed by
    them."""
    if motion == "flow":
        return (
            f"DIS preset {FLOW_PRESET}, finest scale {FLOW_FINEST_SCALE}, patch stride "
            f"{FLOW_PATCH_STRIDE}, refinement {FLOW_REFINEMENT_ITERATIONS}"
        )
    if motion == "shift":
        return f"phase correlation of {THUMB_SHORT_SIDE}-px thumbnails"
    return None


#: What :meth:`MotionCompensator.measure` hands back for a model that aligns in its own graph.
IN_GRAPH = np.zeros(0, np.uint8)


class MotionCompensator:
    """One stream's motion compensation, the one piece training and the backends share:
    remembers the previous frame's grey image (or thumbnail, for ``"shift"``), measures how
    the current frame moved from it, and moves a state by that."""

    def __init__(self, motion: str) -> None:
        self._flow = FlowEstimator() if motion == "flow" else None
        # "graph": the network aligns its state itself (streamdenoise.models.align); the
        # host measures nothing and hands the state over as it is
        self._in_graph = motion == "graph"
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def observe(self, image: np.ndarray):
        """The motion from the previous frame to ``image`` (H×W×3 RGB, uint8 or float on
        [0, 1]): a flow field or a (dy, dx) shift; None for the first frame."""
        motion, self._previous = self.measure(self._previous, image)
        return motion

    def measure(self, previous: np.ndarray | None, image: np.ndarray):
        """:meth:`observe` with the remembered frame passed in and handed back, so that one
        compensator can serve many streams that each carry their own: (motion from
        ``previous`` to ``image``, what to pass as ``previous`` with the next frame)."""
        if self._in_graph:
            return (None if previous is None else IN_GRAPH), IN_GRAPH
        grey = grey_frame(image) if self._flow else grey_thumbnail(image)
        if previous is None:
            return None, grey
        if self._flow:
            return self._flow.flow(previous, grey), grey
        return global_shift(previous, grey, image.shape[0]), grey

    def apply(self, state, frame, motion):
        """``state`` (N, C, H, W) moved by what :meth:`observe` returned; ``frame`` (the
        current noisy one, (N, 3, H, W)) fills what a shift uncovers."""
        if self._in_graph:
            return state
        if self._flow:
            return warp_state(state, motion)
        return shift_state(state, frame, *motion)


def warp_state(state, flow):
    """``state`` (N, C, H, W) resampled along ``flow`` (N, h, w, 2) (or (h, w, 2) for N = 1).

    The flow may cover only the top-left h×w of the state (the frame before the network's
    padding); its edge values extend over the rest. Bilinear, borders replicated: OpenCV's
    ``remap`` for host arrays and CPU fp32 tensors outside autograd (3× faster than torch on
    a CPU; it rounds the sampling position to 1/32 pixel), torch's ``grid_sample`` for the
    rest (training, CUDA).
    """
    if isinstance(flow, np.ndarray):
        flow = flow.astype(np.float32, copy=False)
    if flow.ndim == 3:
        flow = flow[None]
    n, c, h, w = state.shape
    if _remap_suits(state) and isinstance(flow, np.ndarray):
        # a CPU backend's fp32 state: OpenCV, in place of torch's slower CPU grid_sample
        return torch.from_numpy(warp_state(state.numpy(), flow))
    if isinstance(state, np.ndarray):
        state = np.ascontiguousarray(state)  # runtimes may hand back channels-last views
        out = np.empty_like(state)
        for i in range(n):
            f = padded_flow(flow[i], (h, w))[0]
            map_x = f[..., 0] + np.arange(w, dtype=np.float32)
            map_y = f[..., 1] + np.arange(h, dtype=np.float32)[:, None]
            for j in range(c):
                cv2.remap(
                    state[i, j],
                    map_x,
                    map_y,
                    cv2.INTER_LINEAR,
                    dst=out[i, j],
                    borderMode=cv2.BORDER_REPLICATE,
                )
        return out
    f = torch.as_tensor(flow, dtype=torch.float32, device=state.device).permute(0, 3, 1, 2)
    if f.shape[-2:] != (h, w):
        f = F.pad(f, (0, w - f.shape[-1], 0, h - f.shape[-2]), mode="replicate")
    xs = torch.arange(w, device=state.device, dtype=torch.float32)
    ys = torch.arange(h, device=state.device, dtype=torch.float32)
    gx = (xs.view(1, 1, w) + f[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys.view(1, h, 1) + f[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], -1).expand(n, h, w, 2)
    out = F.grid_sample(
        state.float(), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.to(state.dtype)


def padded_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A frame's flow, (h, w, 2) float32, as (1, H, W, 2) for a state of ``size`` = (H, W)
    ≥ (h, w): the network's padding below and right of the frame takes the edge values."""
    h, w = size
    if flow.shape[:2] != (h, w):
        flow = np.pad(flow, ((0, h - flow.shape[0]), (0, w - flow.shape[1]), (0, 0)), mode="edge")
    return flow[None]


def _remap_suits(state) -> bool:
    """A torch tensor that OpenCV can warp for us: fp32, on the CPU, outside autograd."""
    return (
        isinstance(state, torch.Tensor)
        and state.device.type == "cpu"
        and state.dtype == torch.float32
        and not (state.requires_grad and torch.is_grad_enabled())
    )
