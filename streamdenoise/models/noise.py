"""Noise synthesis (training and evaluation) and the blind noise-level estimator.

All synthesis is deterministic under a seed: every function takes a ``numpy`` or ``torch``
generator. Images are float in [0, 1] unless stated otherwise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.nn import functional as F

MAX_SIGMA = 55.0 / 255.0

# Immerkær's 3×3 operator: it cancels smooth image structure (up to second order) and
# has L2 norm 6, so for white noise of std s its response has std 6·s.
_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_MAD_TO_STD = 1.0 / (0.6745 * 6.0)


# Pixels the median looks at: 16k per channel pin σ to ~1 % (and the denoiser smooths the
# estimate over frames) for ~1.5 ms per 720p frame, where a quarter of the pixels took 20 ms.
ESTIMATOR_SAMPLES = 1 << 14


def estimate_noise_sigma(image: np.ndarray) -> np.ndarray:
    """Per-channel noise std of an H×W×3 image (uint8 → 8-bit scale, float → its own scale).

    Median of the absolute Immerkær response, so edges and texture (a minority of pixels)
    bias it little. The operator is evaluated on a regular grid of about
    :data:`ESTIMATOR_SAMPLES` pixels (every second row and column on small images, as in
    training; an odd stride on large ones, so the grid walks through every position of the
    8×8 / 16×16 blocks of compressed video instead of sitting on their edges).
    Quantisation and clipping make it read a little low at very low and very high levels,
    which the networks learn because they are trained with this same estimate.
    """
    h, w = image.shape[:2]
    step = max(2, round(math.sqrt(h * w / ESTIMATOR_SAMPLES)))
    if step > 2:
        step |= 1

    def at(dy: int, dx: int) -> np.ndarray:  # neighbour (dy, dx) of every sampled pixel
        return image[1 + dy : h - 1 + dy : step, 1 + dx : w - 1 + dx : step].astype(np.float32)

    edges = at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)
    corners = at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)
    resp = np.abs(4 * at(0, 0) - 2 * edges + corners).reshape(-1, 3)
    return np.median(resp, axis=0) * _MAD_TO_STD


# A monochrome frame — an IR camera's night mode, whose neutral chroma decodes to R = G = B —
# carries the same noise in all three channels. The networks learned on noise independent
# per channel, which their first layers partly average away across the channels; given the
# per-channel level of noise that is the same in every channel, they denoise too little. They
# are given this many times the estimate instead (tuned on training videos made grey,
# checked on both validation sets: benchmarks/results/quality/monochrome_noise.md).
MONOCHROME_NOISE_GAIN = 1.25
# How far R − G and G − B may stray from their typical value (mean absolute deviation from
# the median, summed, 8-bit steps) in a monochrome frame: neutral chroma decodes to equal
# channels up to rounding, and a camera whose IR picture carries a slight tint (chroma a step
# off neutral) to channels a constant apart; the channels of a colour frame differ by varying
# whole steps even where the scene is grey (their noise alone is independent).
MONOCHROME_MAX_CHROMA = 1.0
#: ITU-R BT.601 luma weights: what a decoder's neutral chroma leaves in each of R, G and B.
BT601_LUMA = (0.299, 0.587, 0.114)


def monochrome_gain(image: np.ndarray) -> float:
    """:data:`MONOCHROME_NOISE_GAIN` for a monochrome H×W×3 frame (uint8, or float on
    [0, 1]), else 1. Looks at about :data:`ESTIMATOR_SAMPLES` pixels."""
    h, w = image.shape[:2]
    step = max(1, round(math.sqrt(h * w / ESTIMATOR_SAMPLES)))
    sample = image[::step, ::step].astype(np.float32).reshape(-1, 3)
    if image.dtype != np.uint8:
        sample *= 255
    spread = 0.0
    for diff in (sample[:, 0] - sample[:, 1], sample[:, 1] - sample[:, 2]):
        spread += float(np.abs(diff - np.median(diff)).mean())
    return MONOCHROME_NOISE_GAIN if spread < MONOCHROME_MAX_CHROMA else 1.0


def monochrome_gain_torch(x: torch.Tensor) -> torch.Tensor:
    """Batched :func:`monochrome_gain` for training: (N, 3, H, W) on [0, 1] → (N, 1, 1, 1)."""
    sample = x[:, :, ::2, ::2].float().flatten(2) * 255
    spread = torch.zeros(x.shape[0])
    for diff in (sample[:, 0] - sample[:, 1], sample[:, 1] - sample[:, 2]):
        spread += (diff - diff.median(dim=1, keepdim=True).values).abs().mean(1)
    gain = torch.where(spread < MONOCHROME_MAX_CHROMA, MONOCHROME_NOISE_GAIN, 1.0)
    return gain.to(x.dtype).view(-1, 1, 1, 1)


def estimate_noise_sigma_torch(x: torch.Tensor) -> torch.Tensor:
    """Batched torch version of :func:`estimate_noise_sigma`: (N, 3, H, W) → (N, 3, 1, 1)."""
    k = torch.from_numpy(_LAPLACE).to(x.dtype).to(x.device).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    resp = F.conv2d(x, k, groups=3)[:, :, ::2, ::2].abs().flatten(2)
    return (resp.median(dim=2).values * _MAD_TO_STD).view(x.shape[0], 3, 1, 1)


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-8) ** (1 / 2.4) - 0.055)


def to_monochrome(clips: torch.Tensor, share: float, gen: torch.Generator):
    """A share of clips (N, T, 3, H, W) made grey (BT.601 luma in R, G and B), as an IR
    camera at night sends them: (clips, which were made grey (N,) bool)."""
    grey = torch.rand(clips.shape[0], generator=gen) < share
    if grey.any():
        weights = torch.tensor(BT601_LUMA, dtype=clips.dtype).view(1, 1, 3, 1, 1)
        luma = (clips[grey] * weights).sum(2, keepdim=True)
        clips = clips.clone()
        clips[grey] = luma.expand(-1, -1, 3, -1, -1)
    return clips, grey


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8 bits, as a camera delivers frames."""
    return (x.clamp(0, 1) * 255).round() / 255


def add_awgn(x: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """x + N(0, sigma²); ``sigma`` broadcasts against x (e.g. (N, 1, 1, 1, 1))."""
    return x + sigma * torch.randn(x.shape, generator=gen, dtype=x.dtype)


def add_realistic(x: torch.Tensor, gen: torch.Generator, level: torch.Tensor) -> torch.Tensor:
    """Camera-like noise with random parameters on clips (N, T, 3, H, W), before compression.

    ``level`` (N,) in [0, 1] sets the overall strength; shot/read/chroma shares are drawn per
    clip. See :func:`camera_noise` for the model.
    """
    n = x.shape[0]
    lv = level.view(n, 1, 1, 1, 1)
    u = torch.rand((n, 3), generator=gen)
    shot = (0.002 + 0.03 * u[:, 0]).view(n, 1, 1, 1, 1) * lv
    read = (0.0002 + 0.004 * u[:, 1]).view(n, 1, 1, 1, 1) * lv**2
    chroma = (0.3 * u[:, 2]).view(n, 1, 1, 1) * level.view(n, 1, 1, 1) * 0.06
    return camera_noise(x, gen, shot, read, chroma)


def camera_noise(
    x: torch.Tensor,
    gen: torch.Generator,
    shot: torch.Tensor,
    read: torch.Tensor,
    chroma: torch.Tensor,
) -> torch.Tensor:
    """Poisson–Gaussian noise in linear light, the sRGB gamma, then chroma noise.

    ``shot``: variance per unit linear signal, ``read``: constant std in linear light (both
    broadcast as (N, 1, 1, 1, 1)); ``chroma`` (N, 1, 1, 1): std of a blotchy colour offset
    (noise at 1/4 resolution, upsampled) on the colour-difference axes only, as demosaicing
    and in-camera chroma denoising leave it.
    """
    lin = srgb_to_linear(x.clamp(0, 1))
    std = (shot * lin + read**2).sqrt()
    lin = lin + std * torch.randn(x.shape, generator=gen)
    y = linear_to_srgb(lin)
    n, t, h, w = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    hs, ws = max(1, h // 4), max(1, w // 4)
    c = torch.randn((n * t, 2, hs, ws), generator=gen)
    c = F.interpolate(c, size=(h, w), mode="bilinear", align_corners=False).view(n, t, 2, h, w)
    cb, cr = c[:, :, 0] * chroma, c[:, :, 1] * chroma
    offset = torch.stack([1.402 * cr, -0.344 * cb - 0.714 * cr, 1.772 * cb], 2)
    return y + offset


def realistic_eval_noise(clean: np.ndarray, sigma255: float, seed: int) -> np.ndarray:
    """Deterministic camera-like noise for evaluation: a T×H×W×3 uint8 clip in and out.

    Poisson–Gaussian with 70 % of the variance from shot noise at mid-grey and a total std of
    ≈ ``sigma255`` there (after gamma), chroma noise of std 0.25·σ, then H.264 (CRF 23,
    typical of camera streams) for clips or JPEG quality 85 for single images.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(clean).permute(0, 3, 1, 2)[None].float() / 255
    lin_std = sigma255 / 255 / 1.08  # sRGB slope at mid-grey (linear 0.214) is ≈ 1.08
    shot = torch.tensor(0.7 * lin_std**2 / 0.214).view(1, 1, 1, 1, 1)
    read = torch.tensor(math.sqrt(0.3) * lin_std).view(1, 1, 1, 1, 1)
    chroma = torch.tensor(0.25 * sigma255 / 255).view(1, 1, 1, 1)
    noisy = camera_noise(x, gen, shot, read, chroma)[0]
    u8 = (noisy.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if len(u8) > 1:
        return h264_roundtrip(u8, 23)
    return jpeg_roundtrip(u8[0], 85)[None]


def jpeg_roundtrip(frame: np.ndarray, quality: int) -> np.ndarray:
    """Compress an H×W×3 uint8 RGB frame as JPEG at ``quality`` and decode it."""
    ok, buf = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]


def h264_roundtrip(frames: np.ndarray, crf: int) -> np.ndarray:
    """Encode a T×H×W×3 uint8 RGB clip with libx264 at ``crf`` and decode it back."""
    import io

    import av

    t, h, w, _ = frames.shape
    pad_h, pad_w = (-h) % 2, (-w) % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # one thread: clips are tiny, and x264's thread pool start-up dominated the cost
        stream.options = {"crf": str(int(crf)), "preset": "ultrafast", "bf": "0", "threads": "1"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), "rgb24")))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as inp:
        inp.streams.video[0].thread_count = 1
        decoded = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    return np.stack(decoded)[:t, :h, :w]


def compress_clips(x: torch.Tensor, rng: np.random.Generator, p_h264: float = 0.2) -> torch.Tensor:
    """Quantise clips (N, T, 3, H, W) to 8 bit and compress each with JPEG or H.264.

    Quality is drawn per clip: JPEG quality 30–95 per frame, or H.264 CRF 18–35 per clip.
    """
    out = []
    for clip in x:
        u8 = (clip.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        if rng.random() < p_h264:
            u8 = h264_roundtrip(u8, int(rng.integers(18, 36)))
        else:
            q = int(rng.integers(30, 96))
            u8 = np.stack([jpeg_roundtrip(f, q) for f in u8])
        out.append(torch.from_numpy(np.ascontiguousarray(u8)).permute(0, 3, 1, 2))
    return torch.stack(out).float() / 255


def synthesize(
    clean: torch.Tensor,
    seed: int,
    kind: str = "mixed",
    sigma: float | None = None,
    p_realistic: float = 0.35,
    p_unclipped: float = 0.0,
    monochrome: torch.Tensor | None = None,
) -> torch.Tensor:
    """Noisy 8-bit version of clean clips (N, T, 3, H, W), deterministic under ``seed``.

    ``kind``: "awgn" (σ fixed if given, else uniform in [0, 55]/255 per clip), "realistic"
    (Poisson–Gaussian + chroma + JPEG/H.264), or "mixed" (each clip realistic with
    probability ``p_realistic``). Each AWGN clip keeps its noise unclipped and unrounded
    with probability ``p_unclipped``: the protocol of published benchmarks, which a camera
    never delivers but a denoiser compared on those tables meets. Clips marked in
    ``monochrome`` (N,) (grey ones, :func:`to_monochrome`) get the same noise in every
    channel, as a monochrome sensor's picture sent with neutral chroma.
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = clean.shape[0]
    if kind == "awgn":
        realistic = torch.zeros(n, dtype=torch.bool)
    elif kind == "realistic":
        realistic = torch.ones(n, dtype=torch.bool)
    elif kind == "mixed":
        realistic = torch.rand(n, generator=gen) < p_realistic
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    if sigma is None:
        sig = torch.rand(n, generator=gen) * MAX_SIGMA
    else:
        sig = torch.full((n,), float(sigma))
    one_channel = torch.zeros(n, dtype=torch.bool) if monochrome is None else monochrome
    noisy = _same_in_every_channel(add_awgn(clean, sig.view(n, 1, 1, 1, 1), gen), one_channel)
    if realistic.any():
        idx = realistic.nonzero().flatten()
        level = 0.1 + 0.9 * torch.rand(len(idx), generator=gen)
        real = _same_in_every_channel(add_realistic(clean[idx], gen, level), one_channel[idx])
        noisy[idx] = compress_clips(quantize(real), rng)
    if p_unclipped <= 0:
        return quantize(noisy)
    unclipped = ~realistic & (torch.rand(n, generator=gen) < p_unclipped)
    return torch.where(unclipped.view(n, 1, 1, 1, 1), noisy, quantize(noisy))


#: OpenCV's demosaicking methods a simulated camera picks from (codes for 16-bit raw, and
#: VNG, which takes 8-bit raw only).
_DEMOSAIC = ("", "_EA", "_VNG")
#: The four Bayer phases, by OpenCV's names (taken from the second row: RGGB data is "BG").
_BAYER = ("BG", "GB", "RG", "GR")


def isp_clips(clean: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips (N, T, 3, H, W) through a simulated camera: (its noise-free rendering, its noisy
    8-bit output), each clip with parameters of its own.

    Sensor noise (Poisson–Gaussian in linear light) goes onto a Bayer mosaic, then the ISP
    every camera has: demosaicking (bilinear, edge-aware or VNG), the sRGB curve and unsharp
    sharpening, and a codec (JPEG or H.264, as :func:`compress_clips`). Demosaicking spreads
    each pixel's noise over its neighbours and sharpening amplifies it: noise that is not
    white, which a network trained on white noise keeps as texture. The target is the same
    rendering without noise and codec — a denoiser is to remove the noise, not the camera's
    sharpening — so the pair replaces the clip *and* its target.
    """
    target, noisy = torch.empty_like(clean), torch.empty_like(clean)
    for i, clip in enumerate(clean):
        lin = srgb_to_linear(clip.clamp(0, 1)).permute(0, 2, 3, 1).numpy()  # T×H×W×3
        shot, read = rng.uniform(0.001, 0.03), rng.uniform(0.001, 0.03)
        phase = int(rng.integers(4))
        method = _DEMOSAIC[int(rng.integers(len(_DEMOSAIC)))]
        amount, radius = rng.uniform(0.0, 1.2), rng.uniform(0.6, 1.5)
        raw = _mosaic(lin, phase)
        std = np.sqrt(shot * raw + read**2)
        sensed = raw + rng.standard_normal(raw.shape, np.float32) * std
        for out, mosaic in ((target, raw), (noisy, sensed)):
            frames = [_render(m, phase, method, amount, radius) for m in mosaic]
            out[i] = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    return target, compress_clips(noisy, rng)


def _mosaic(rgb: np.ndarray, phase: int) -> np.ndarray:
    """The …×H×W Bayer mosaic of linear …×H×W×3 ``rgb`` in the pattern ``_BAYER[phase]``
    names (OpenCV reads a pattern's name from its second row and column)."""
    mosaic = np.empty(rgb.shape[:-1], rgb.dtype)
    # red's place in the 2×2 cell for "BG", "GB", "RG", "GR" (OpenCV's BG is RGGB data);
    # blue's is opposite it, green's the other two
    ry, rx = ((0, 0), (0, 1), (1, 1), (1, 0))[phase]
    for y in range(2):
        for x in range(2):
            channel = 0 if (y, x) == (ry, rx) else 2 if (y, x) == (1 - ry, 1 - rx) else 1
            mosaic[..., y::2, x::2] = rgb[..., y::2, x::2, channel]
    return mosaic


def _render(raw: np.ndarray, phase: int, method: str, amount: float, radius: float):
    """A linear H×W Bayer mosaic demosaicked, gamma-encoded and sharpened: float32 H×W×3."""
    code = getattr(cv2, f"COLOR_Bayer{_BAYER[phase]}2RGB{method}")
    if method == "_VNG":  # 8-bit only
        rgb = cv2.cvtColor((np.clip(raw, 0, 1) * 255 + 0.5).astype(np.uint8), code)
        rgb = rgb.astype(np.float32) / 255
    else:
        rgb = cv2.cvtColor((np.clip(raw, 0, 1) * 65535 + 0.5).astype(np.uint16), code)
        rgb = rgb.astype(np.float32) / 65535
    out = linear_to_srgb(torch.from_numpy(rgb)).numpy()
    blur = cv2.GaussianBlur(out, (0, 0), radius)
    return np.clip(out + amount * (out - blur), 0, 1)


def _same_in_every_channel(noisy: torch.Tensor, clips: torch.Tensor) -> torch.Tensor:
    """``noisy`` (N, T, 3, H, W) with the first channel copied to all three in ``clips``:
    on a grey clip, the noise of one sensor channel."""
    if clips.any():
        noisy[clips] = noisy[clips][:, :, :1].expand(-1, -1, 3, -1, -1).clone()
    return noisy
