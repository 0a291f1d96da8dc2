"""Reference denoisers that a stills fine-tune distils into the network.

A slow denoiser that knows the camera's measured noise (:mod:`streamdenoise.lab.camera_noise`)
denoises crops of the footage once; the network then learns to map the noisy crops to those
references. The network is fast enough for video and the reference is not, so what the
fine-tune buys is the reference's quality at the network's speed, as far as the network can
follow it. Measured on real camera noise (docs/finetune.md), this beat both self-supervised
pairs built from the noise model (Recorrupted-to-Recorrupted, whose every error in the noise
model becomes a bias it learns) and synthetic noise from that model on clean photos (which
teaches the noise but not the camera's scenes).

- ``nlm``: OpenCV's non-local means, its strength (``h``) set to the measured noise level of
  each crop. Fast and free of licence conditions, but blind to the noise's spatial
  correlation.
- ``bm3d+nlm``: the mean of that and of BM3D (Dabov et al. 2007) given the measured noise's
  power spectrum, in the noise's own uncorrelated colour components (Mäkinen et al. 2020
  made BM3D exact for correlated noise). Two denoisers that err differently: their mean
  scored 0.6 dB above either alone on real camera noise. BM3D takes about 10 s per 256×256
  crop on one core and needs the ``bm3d`` package, whose licence allows non-commercial use
  only (the ``baselines`` extra).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch

from streamdenoise.errors import UsageError
from streamdenoise.lab.camera_noise import NoiseModel

TEACHERS = ("auto", "bm3d+nlm", "nlm", "none")
# BM3D's shrinkage settings for a given noise spectrum: the classic hard threshold (2.7σ) and
# Wiener regularisation. The package would otherwise fit them to each spectrum, in code that
# needs NumPy < 2; these score within 0.1 dB of that on real camera noise.
BM3D_THRESHOLD, BM3D_MU2 = 2.7, 1.0
# Non-local means: template and search windows (OpenCV's recommended 7 and 21).
NLM_TEMPLATE, NLM_SEARCH = 7, 21

Teacher = Callable[[np.ndarray], np.ndarray]


def bm3d_available() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def make_teacher(kind: str, noise: NoiseModel) -> tuple[str, Teacher | None]:
    """(name, teacher) for ``--teacher kind``; ``auto`` is ``bm3d+nlm`` where the bm3d
    package is installed, else ``nlm``. ``none``: no teacher (self-supervised pairs)."""
    if kind == "auto":
        kind = "bm3d+nlm" if bm3d_available() else "nlm"
    if kind == "none":
        return kind, None
    if kind == "bm3d+nlm":
        if not bm3d_available():
            raise UsageError(
                "--teacher bm3d+nlm needs the bm3d package (pip install bm3d; its licence "
                "allows non-commercial use only), or use --teacher nlm"
            )
        return kind, lambda crop: (bm3d_reference(crop, noise) + nlm_reference(crop, noise)) / 2
    if kind == "nlm":
        return kind, lambda crop: nlm_reference(crop, noise)
    raise UsageError(f"--teacher must be one of {', '.join(TEACHERS)}")


def noise_rms(crop: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """Per-channel noise std (0–1 scale) the model gives for this uint8 RGB crop."""
    b = torch.from_numpy(cv2.blur(crop, (5, 5))).permute(2, 0, 1)[None].float() / 255
    return noise.std(b).pow(2).mean((0, 2, 3)).sqrt().numpy().astype(np.float64)


def nlm_reference(crop: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """Non-local means of a uint8 RGB crop at the measured noise level: float RGB on [0, 1]."""
    h = float(255 * math.sqrt(np.mean(noise_rms(crop, noise) ** 2)))
    bgr = cv2.fastNlMeansDenoisingColored(
        np.ascontiguousarray(crop[:, :, ::-1]), None, h, h, NLM_TEMPLATE, NLM_SEARCH
    )
    return bgr[:, :, ::-1].astype(np.float32) / 255


def bm3d_reference(crop: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """BM3D of a uint8 RGB crop given the measured noise: float RGB on [0, 1].

    Each channel is divided by its noise std at this crop's brightness, then rotated into the
    noise's uncorrelated components (the strongest first: BM3D matches blocks on the first
    channel); each component's spectrum is its measured spatial correlation's."""
    import bm3d

    h, w = crop.shape[:2]
    scale = noise_rms(crop, noise)
    order = np.argsort(noise.weights)[::-1]
    basis, weights = noise.basis[:, order], noise.weights[order]
    z = (crop.astype(np.float64) / 255 / scale) @ basis
    psd = noise.power_spectra(h, w)[order].transpose(1, 2, 0) * weights * (h * w)
    profile = bm3d.BM3DProfile()
    profile.lambda_thr3d, profile.mu2 = BM3D_THRESHOLD, BM3D_MU2
    profile.num_threads = torch.get_num_threads()
    out = bm3d.bm3d(z, psd, profile)
    return ((out @ basis.T) * scale).astype(np.float32)
