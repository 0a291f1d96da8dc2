"""Global motion compensation of the recurrent state, for models trained with it
(``NetConfig.align_state``: the ``fixed`` model).

A causal recurrent denoiser can only average what stays in place. Cameras pan, shake and get
nudged by wind, so before the state is handed back to the network it is shifted
by the frame's global translation: an integer shift found by phase correlation of two small
grey thumbnails of consecutive noisy frames (downscaling averages the noise away, and the
sub-pixel peak is scaled back to full resolution). Local motion is left to the network,
which also sees ``prev`` and learns where it still disagrees with the current frame.

The same functions run in training (on torch patches) and in every backend (on host arrays
or CUDA tensors), so the networks learn with exactly the alignment they get in the field.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from streamdenoise.models.nets import initial_state

# Thumbnails are about this many pixels on their short side (never upscaled): enough
# texture for a sharp correlation peak at ~1 ms per 720p frame.
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
