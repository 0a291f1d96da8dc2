"""Global motion compensation of the temporal models' recurrent state.

A causal recurrent denoiser can only average what stays in place. Cameras pan, shake and get
nudged by wind, so before the previous output is handed back to the network it is shifted
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
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if f == 1:
        return np.ascontiguousarray(grey)
    return cv2.resize(grey, (w // f, h // f), interpolation=cv2.INTER_AREA)


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


def shift_state(state, fill, dy: int, dx: int):
    """``state`` moved by (dy, dx) over its last two axes; uncovered pixels come from ``fill``.

    Works on numpy arrays and torch tensors alike. Where the past has no pixel, the current
    noisy frame stands in, as it does for the whole frame after a reset.
    """
    if dy == 0 and dx == 0:
        return state
    h, w = state.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        return fill
    out = fill.copy() if isinstance(fill, np.ndarray) else fill.clone()
    src_y, dst_y = (
        (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    )
    src_x, dst_x = (
        (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    )
    out[..., dst_y, dst_x] = state[..., src_y, src_x]
    return out
