"""A camera's noise, measured blind from its own noisy frames, and drawn again at will.

Processed camera noise is far from white: demosaicking spreads each pixel's noise over its
neighbours, in-camera chroma processing leaves wide colour blotches, and the tone curve makes
the level depend on the brightness, not monotonically (bright and dark tones are squeezed).
The model here keeps each of these:

- **colour**: the correlation between R, G and B noise, split into three uncorrelated
  components (its eigenvectors: roughly one luma-like and two colour-difference ones);
- **spatial**: each component's own spatial correlation, out to :data:`RADIUS` pixels (the
  luma-like one short, the colour ones wide);
- **level**: each channel's noise std as a function of that channel's brightness, in
  :data:`LEVEL_BINS` bins (interpolated between bin centres).

How it is measured, without a clean frame:

- the *shape* (colour and spatial correlation) from the flattest blocks of the frames, each
  with a quadratic surface taken out (shading), as the **median over blocks** of each block's
  own correlations, so that the blocks where some texture is left do not pull it towards
  long-range correlation;
- the *level* per brightness bin from the median absolute response of a second-difference
  filter on the least-structured third of that bin's pixels (a robust, high-pass view that
  sees little of the picture), turned into the std of the whole noise through the measured
  spatial correlation (the filter sees only the noise's fine part).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from streamdenoise.errors import UserError

#: Spatial correlation is kept out to this many pixels.
RADIUS = 8
#: Brightness bins of the level function (0–1 scale).
LEVEL_BINS = 8
#: Side of the blocks the shape is measured on, their step, and the share of flattest kept.
BLOCK, BLOCK_STEP, FLAT_SHARE = 32, 16, 0.25
#: Share of each brightness bin's pixels (least structured first) the level is read from.
LEVEL_SHARE = 0.3
#: Fewest pixels a brightness bin needs for its own level (others are interpolated).
LEVEL_MIN_PIXELS = 600
#: Frames the measurement looks at, at most (evenly spaced): it costs ~0.1 s per megapixel.
MAX_FRAMES = 24
# Second differences in both directions: blind to planes and to most smooth shading.
_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
_MAD_TO_STD = 1 / 0.6745


@dataclass
class NoiseModel:
    """Zero-mean Gaussian noise: per channel, std ``level[c]`` at the brightness bin centres;
    in the channels' unit-variance space, uncorrelated components ``basis[:, k]`` of variance
    ``weights[k]`` (the colour correlation's eigen-decomposition), each with the spatial
    correlation ``spatial[k]`` ((2R+1)², centre 1)."""

    level: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    spatial: np.ndarray

    @property
    def colour(self) -> np.ndarray:
        """The 3×3 correlation between the channels' noise."""
        return (self.basis * self.weights) @ self.basis.T

    def channel_correlation(self) -> np.ndarray:
        """Each channel's spatial correlation (3, 2R+1, 2R+1), centre 1."""
        out = np.einsum("ck,k,kyx->cyx", self.basis**2, self.weights, self.spatial)
        r = out.shape[1] // 2
        return out / out[:, r : r + 1, r : r + 1]

    def std(self, brightness: torch.Tensor) -> torch.Tensor:
        """Per-value std for a (N, 3, H, W) brightness on [0, 1]."""
        x = (brightness.float() * LEVEL_BINS - 0.5).clamp(0, LEVEL_BINS - 1)
        i = x.floor().long().clamp(max=LEVEL_BINS - 2)
        frac = x - i
        table = torch.from_numpy(self.level).float()  # (3, bins)
        out = []
        for c in range(3):
            lo, hi = table[c][i[:, c]], table[c][i[:, c] + 1]
            out.append(lo + (hi - lo) * frac[:, c])
        return torch.stack(out, 1)

    def variance_of(self, frames: list[np.ndarray]) -> float:
        """Mean noise power per value over uint8 frames (their own brightness as the level's)."""
        powers = []
        for f in frames:
            b = torch.from_numpy(cv2.blur(f, (5, 5))).permute(2, 0, 1)[None].float() / 255
            powers.append(float(self.std(b).pow(2).mean()))
        return float(np.mean(powers))

    def sample(
        self, clean_ish: torch.Tensor, gen: torch.Generator, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Noise for frames (N, 3, H, W) whose local brightness ``clean_ish`` gives, times
        ``scale`` (N,) if given."""
        n, _, h, w = clean_ish.shape
        white = torch.randn((n, 3, h, w), generator=gen)
        amplitude = np.sqrt(self.power_spectra(h, w)[:, :, : w // 2 + 1])
        spectrum = torch.fft.rfft2(white) * torch.from_numpy(amplitude).float()
        components = torch.fft.irfft2(spectrum, s=(h, w))
        mix = torch.from_numpy(self.basis * np.sqrt(np.clip(self.weights, 0, None))).float()
        noise = torch.einsum("ck,nkhw->nchw", mix, components)
        local = F.avg_pool2d(clean_ish.float(), 5, 1, 2, count_include_pad=False)
        std = self.std(local)
        if scale is not None:
            std = std * scale.view(-1, 1, 1, 1)
        return noise * std

    def scaled(self, factor: float) -> NoiseModel:
        """The same noise, its std times ``factor``."""
        return NoiseModel(self.level * factor, self.basis, self.weights, self.spatial)

    def power_spectra(self, h: int, w: int) -> np.ndarray:
        """Each component's noise power spectrum on an h×w frame (3, h, w), mean 1."""
        return _spectra(self.spatial.tobytes(), self.spatial.shape, h, w)

    def to_dict(self) -> dict:
        return {
            "level_8bit": np.round(self.level * 255, 3).tolist(),
            "colour_correlation": np.round(self.colour, 4).tolist(),
            "basis": np.round(self.basis, 5).tolist(),
            "weights": np.round(self.weights, 5).tolist(),
            "spatial": np.round(self.spatial, 4).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> NoiseModel:
        return cls(
            np.asarray(data["level_8bit"], np.float64) / 255,
            np.asarray(data["basis"], np.float64),
            np.asarray(data["weights"], np.float64),
            np.asarray(data["spatial"], np.float64),
        )


@functools.lru_cache(maxsize=16)
def _spectra(spatial: bytes, shape: tuple, h: int, w: int) -> np.ndarray:
    """Power spectrum of each component's spatial correlation on an h×w torus, mean 1 (unit
    variance): (3, h, w)."""
    corr = np.frombuffer(spatial).reshape(shape)
    r = shape[1] // 2
    out = []
    for k in range(shape[0]):
        grid = np.zeros((h, w))
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                grid[dy % h, dx % w] += corr[k, dy + r, dx + r]
        power = np.clip(np.fft.fft2(grid).real, 0, None)
        out.append(power / max(power.mean(), 1e-12))
    return np.stack(out)


def _flat_blocks(frames: list[np.ndarray]) -> np.ndarray:
    """Noise residuals (K, B, B, 3) of the flattest blocks, a quadratic surface taken out."""
    b = BLOCK
    yy, xx = (np.mgrid[0:b, 0:b].reshape(2, -1) + 0.5) / b - 0.5
    basis = np.stack([np.ones(b * b), yy, xx, yy * yy, xx * xx, xx * yy], 1)
    project = basis @ np.linalg.pinv(basis)
    out = []
    for frame in frames:
        img = frame.astype(np.float64) / 255
        structure = _structure(frame)
        h, w = structure.shape
        ys, xs = range(0, h - b + 1, BLOCK_STEP), range(0, w - b + 1, BLOCK_STEP)
        corners = [(y, x) for y in ys for x in xs]
        scores = [structure[y : y + b, x : x + b].mean() for y, x in corners]
        for i in np.argsort(scores)[: max(1, int(len(corners) * FLAT_SHARE))]:
            y, x = corners[i]
            patch = img[y : y + b, x : x + b].reshape(-1, 3)
            if patch.min() <= 1 / 255 or patch.max() >= 254 / 255:
                continue  # clipped: the noise there is not what it is elsewhere
            out.append((patch - project @ patch).reshape(b, b, 3))
    if len(out) < 4:
        raise UserError("too few flat, unclipped regions in the footage to measure its noise")
    return np.stack(out)


def _structure(frame: np.ndarray) -> np.ndarray:
    """Gradient magnitude of a heavily blurred grey copy: the picture's large-scale structure,
    which the fine part of the noise hardly reaches."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gy, gx = np.gradient(cv2.GaussianBlur(grey, (0, 0), 3.0))
    return np.hypot(gx, gy)


def _block_correlation(blocks: np.ndarray, radius: int) -> np.ndarray:
    """Each block's (K, B, B) own spatial correlation out to ``radius``: (K, 2r+1, 2r+1)."""
    b = blocks.shape[1]
    spectrum = np.fft.rfft2(blocks, s=(2 * b, 2 * b))
    products = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * b, 2 * b))
    overlap = np.fft.irfft2(np.abs(np.fft.rfft2(np.ones((b, b)), s=(2 * b, 2 * b))) ** 2)
    cov = np.fft.fftshift(products / np.maximum(overlap, 1), axes=(1, 2))
    cov = cov[:, b - radius : b + radius + 1, b - radius : b + radius + 1]
    return cov / cov[:, radius : radius + 1, radius : radius + 1]


def _filter_gain(correlation: np.ndarray) -> float:
    """Std of the second-difference filter's response to unit-variance noise of this spatial
    correlation ((2r+1)², centre 1)."""
    r = correlation.shape[0] // 2
    kernel = np.zeros((2 * r + 1, 2 * r + 1))
    kernel[r - 1 : r + 2, r - 1 : r + 2] = _LAPLACE
    # Var = Σ_a Σ_b k_a k_b ρ(a − b) = Σ_d (k ⋆ k)(d) ρ(d)
    auto = cv2.filter2D(np.pad(kernel, r), -1, kernel, borderType=cv2.BORDER_CONSTANT)
    c = auto.shape[0] // 2
    variance = (auto[c - r : c + r + 1, c - r : c + r + 1] * correlation).sum()
    return float(np.sqrt(max(variance, 1e-12)))


def estimate_noise_model(frames: list[np.ndarray], radius: int = RADIUS) -> NoiseModel:
    """Measure the noise of uint8 RGB ``frames`` (see the module's docstring)."""
    if len(frames) > MAX_FRAMES:
        picks = np.linspace(0, len(frames) - 1, MAX_FRAMES).round().astype(int)
        frames = [frames[i] for i in picks]
    blocks = _flat_blocks(frames)
    unit = blocks / np.maximum(blocks.std((1, 2), keepdims=True), 1e-9)
    per_block = np.einsum("kyxc,kyxd->kcd", unit, unit) / (unit.shape[1] * unit.shape[2])
    colour = np.median(per_block, 0)
    colour = (colour + colour.T) / 2
    np.fill_diagonal(colour, 1.0)
    weights, basis = np.linalg.eigh(colour)
    weights = np.clip(weights, 1e-3, None)
    parts = np.einsum("kyxc,cd->kdyx", unit, basis)
    spatial = np.stack([np.median(_block_correlation(parts[:, d], radius), 0) for d in range(3)])
    spatial /= spatial[:, radius : radius + 1, radius : radius + 1]
    model = NoiseModel(np.zeros((3, LEVEL_BINS)), basis, weights, spatial)
    model.level = _level(frames, model.channel_correlation())
    return model


def _robust_std(values: np.ndarray, clip: float = 3.0, rounds: int = 5) -> float:
    """Std of the Gaussian bulk of zero-mean ``values``, outliers (edges, texture) clipped
    at ``clip`` std in a few rounds. Unlike a median, it does not snap to the integer steps
    that filter responses of 8-bit frames come in."""
    std = max(float(np.median(values)) * _MAD_TO_STD, 1e-9)
    # E[x² | |x| < c] = 1 − 2cφ(c)/P(|x| < c) for a unit normal
    inside = math.erf(clip / math.sqrt(2))
    shrink = 1 - 2 * clip * math.exp(-(clip**2) / 2) / math.sqrt(2 * math.pi) / inside
    for _ in range(rounds):
        kept = values[values < clip * std]
        std = math.sqrt(float(np.mean(kept**2)) / shrink) if len(kept) else std
    return std


def _level(frames: list[np.ndarray], correlation: np.ndarray) -> np.ndarray:
    """Per channel, the noise std in each brightness bin (3, LEVEL_BINS)."""
    responses: list[list[list[np.ndarray]]] = [[[] for _ in range(LEVEL_BINS)] for _ in range(3)]
    for frame in frames:
        img = frame.astype(np.float64) / 255
        inner = (slice(1, -1), slice(1, -1))
        brightness = cv2.GaussianBlur(img, (0, 0), 2.0)[inner]
        structure = _structure(frame)[inner]
        for c in range(3):
            resp = np.abs(cv2.filter2D(img[..., c], -1, _LAPLACE))[inner]
            bins = np.clip((brightness[..., c] * LEVEL_BINS).astype(int), 0, LEVEL_BINS - 1)
            unclipped = (img[inner][..., c] > 1 / 255) & (img[inner][..., c] < 254 / 255)
            for k in range(LEVEL_BINS):
                here = (bins == k) & unclipped
                if here.sum() < 50:
                    continue
                calm = structure <= np.percentile(structure[here], LEVEL_SHARE * 100)
                responses[c][k].append(resp[here & calm])
    level = np.full((3, LEVEL_BINS), np.nan)
    for c in range(3):
        gain = _filter_gain(correlation[c])
        for k in range(LEVEL_BINS):
            values = np.concatenate(responses[c][k]) if responses[c][k] else np.zeros(0)
            if len(values) >= LEVEL_MIN_PIXELS:
                level[c, k] = _robust_std(values) / gain
    if np.isnan(level).all():
        raise UserError("too few unclipped pixels in the footage to measure its noise level")
    for c in range(3):
        known = ~np.isnan(level[c])
        if not known.any():
            level[c] = np.nanmedian(level)
            continue
        level[c] = np.interp(np.arange(LEVEL_BINS), np.nonzero(known)[0], level[c, known])
    return level
