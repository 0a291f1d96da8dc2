"""Quality metrics on uint8 RGB frames: PSNR, SSIM and temporal flicker."""

from __future__ import annotations

import itertools

import cv2
import numpy as np


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    """PSNR in dB over all pixels and channels (8-bit peak)."""
    mse = np.mean((out.astype(np.float64) - ref.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def ssim(out: np.ndarray, ref: np.ndarray) -> float:
    """SSIM (Wang et al. 2004: 11×11 Gaussian window, σ=1.5, K=0.01/0.03), mean over RGB."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = out.astype(np.float64), ref.astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cov + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    # crop the 5-pixel border where the window reaches outside the image
    return float(np.mean((num / den)[5:-5, 5:-5]))


def temporal_activity(frames: list[np.ndarray]) -> float:
    """Mean absolute frame-to-frame difference (8-bit units); 0 for a single frame."""
    if len(frames) < 2:
        return 0.0
    diffs = [
        np.mean(np.abs(b.astype(np.int16) - a.astype(np.int16)))
        for a, b in itertools.pairwise(frames)
    ]
    return float(np.mean(diffs))


def flicker(outputs: list[np.ndarray], clean: list[np.ndarray]) -> float:
    """Temporal activity of the output minus that of the clean reference (0 = as steady as
    the truth; residual noise and flicker make it positive, over-smoothing in time negative)."""
    return temporal_activity(outputs) - temporal_activity(clean)
