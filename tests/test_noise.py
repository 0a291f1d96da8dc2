"""Noise synthesis statistics and the blind noise-level estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamdenoise.models.noise import (
    MONOCHROME_NOISE_GAIN,
    estimate_noise_sigma,
    estimate_noise_sigma_torch,
    h264_roundtrip,
    jpeg_roundtrip,
    monochrome_gain,
    monochrome_gain_torch,
    realistic_eval_noise,
    synthesize,
    to_monochrome,
)


def smooth_scene(h: int = 192, w: int = 256, seed: int = 0) -> np.ndarray:
    """A clean frame with gradients and a few edges, well inside [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.2 * np.sin(xx / 17 + rng.uniform(0, 6)) * np.cos(yy / 23)
    base[h // 3 : h // 2, w // 4 : w // 2] += 0.15
    return np.clip(np.stack([base, 0.9 * base, 1.05 - base], -1), 0.1, 0.9)


def test_awgn_sigma_is_recovered_and_deterministic():
    clean = torch.full((2, 3, 3, 64, 64), 0.5)
    noisy = synthesize(clean, seed=3, kind="awgn", sigma=25 / 255)
    assert abs(float((noisy - clean).std()) * 255 - 25) < 0.8
    assert torch.equal(noisy, synthesize(clean, seed=3, kind="awgn", sigma=25 / 255))
    assert not torch.equal(noisy, synthesize(clean, seed=4, kind="awgn", sigma=25 / 255))
    # 8-bit quantised, as a camera delivers frames
    assert torch.allclose(noisy * 255, (noisy * 255).round(), atol=1e-4)


def test_mixed_noise_covers_the_range_and_is_deterministic():
    clean = torch.full((16, 2, 3, 32, 32), 0.5)
    a = synthesize(clean, seed=11)
    assert torch.equal(a, synthesize(clean, seed=11))
    stds = (a - clean).flatten(1).std(1) * 255
    assert stds.min() < 15 and stds.max() > 30
    assert a.min() >= 0 and a.max() <= 1


def test_a_share_of_awgn_clips_keeps_unclipped_float_noise():
    clean = torch.full((64, 2, 3, 16, 16), 0.95)  # near white: σ = 50 noise clips often
    plain = synthesize(clean, seed=5)
    mixed = synthesize(clean, seed=5, p_unclipped=0.5)
    assert torch.equal(plain, synthesize(clean, seed=5, p_unclipped=0.0))
    assert torch.equal(mixed, synthesize(clean, seed=5, p_unclipped=0.5))
    on_8_bits = ((mixed * 255 - (mixed * 255).round()).abs() < 1e-4).flatten(1).all(1)
    float_clips = ~on_8_bits
    # about half of the AWGN clips (65 % of all), and only AWGN ones: those equal the
    # quantised version once clipped and rounded, and reach past white
    assert 8 <= int(float_clips.sum()) <= 36
    assert torch.equal(((mixed[float_clips].clamp(0, 1) * 255).round() / 255), plain[float_clips])
    assert float(mixed[float_clips].max()) > 1
    assert torch.equal(mixed[on_8_bits], plain[on_8_bits])


def test_monochrome_clips_are_grey_with_the_same_noise_in_every_channel():
    """A share of training clips stands for an IR camera at night: grey pictures whose
    noise (AWGN or camera noise, compressed) is one sensor channel's, and which the
    product's detection takes for monochrome; the other clips keep their colour noise."""
    colour = torch.from_numpy(smooth_scene(32, 32)).permute(2, 0, 1).float()
    clean = colour.expand(64, 2, 3, 32, 32)
    grey_clean, grey = to_monochrome(clean, 0.25, torch.Generator().manual_seed(1))
    assert 6 <= int(grey.sum()) <= 26
    assert torch.equal(grey_clean[~grey], clean[~grey])
    assert torch.equal(grey_clean[grey][:, :, 0], grey_clean[grey][:, :, 2])
    assert not torch.equal(grey_clean[grey][:, :, 0], clean[grey][:, :, 0])
    noisy = synthesize(grey_clean, seed=2, monochrome=grey)
    assert torch.equal(noisy, synthesize(grey_clean, seed=2, monochrome=grey))
    mono, other = noisy[grey], noisy[~grey]
    assert torch.equal(mono[:, :, 0], mono[:, :, 1]) and torch.equal(mono[:, :, 1], mono[:, :, 2])
    assert (mono - grey_clean[grey]).abs().amax() > 5 / 255
    assert not torch.equal(
        other[:, :, 0] - clean[~grey][:, :, 0], other[:, :, 1] - clean[~grey][:, :, 1]
    )
    gains = monochrome_gain_torch(noisy[:, 0]).flatten()
    assert bool((gains[grey] == MONOCHROME_NOISE_GAIN).all())
    assert bool((gains[~grey] == 1.0).all())


def test_realistic_noise_is_signal_dependent():
    # Poisson–Gaussian: darker linear signal → less noise before gamma; after gamma the
    # shadows are amplified, so the check is only that levels differ and stay sane.
    clean = torch.cat([torch.full((1, 4, 3, 64, 64), v) for v in (0.2, 0.8)])
    gen_seed = 5
    out = synthesize(clean, seed=gen_seed, kind="realistic")
    s_dark, s_bright = ((out - clean).flatten(1).std(1) * 255).tolist()
    assert s_dark > 0.5 and s_bright > 0.5 and abs(s_dark - s_bright) > 0.2


def test_realistic_eval_noise_level_and_determinism():
    clean = (smooth_scene(64, 64) * 255).astype(np.uint8)[None].repeat(4, 0)
    a = realistic_eval_noise(clean, 30, seed=1)
    assert a.shape == clean.shape and a.dtype == np.uint8
    assert np.array_equal(a, realistic_eval_noise(clean, 30, seed=1))
    std = float(np.std(a.astype(np.float32) - clean))
    assert 12 < std < 40


@pytest.mark.parametrize("size", [(192, 256), (720, 1280)])
@pytest.mark.parametrize("sigma", [5, 15, 30, 50])
def test_estimator_recovers_sigma_on_synthetic_frames(sigma, size):
    rng = np.random.default_rng(sigma)
    clean = smooth_scene(*size)
    noisy = clean + rng.standard_normal(clean.shape) * sigma / 255
    u8 = (np.clip(noisy, 0, 1) * 255 + 0.5).astype(np.uint8)
    est = estimate_noise_sigma(u8)
    assert est.shape == (3,)
    assert np.all(np.abs(est - sigma) < 0.12 * sigma + 1.0), est


def test_estimator_sees_all_of_a_block_grid():
    """Noise only on the edges of 8×8 blocks (deblocking residue): a stride that is a
    multiple of 8 would see all of it or none of it; the estimate must see a share."""
    rng = np.random.default_rng(0)
    frame = np.full((720, 1280, 3), 0.5, np.float32)
    frame[::8] += rng.standard_normal(frame[::8].shape).astype(np.float32) * 0.2
    est = estimate_noise_sigma(frame)
    assert np.all(est < 0.02), est  # a stride of 8 reads ≈ 0.08


def test_torch_estimator_matches_numpy():
    rng = np.random.default_rng(0)
    noisy = (smooth_scene() + rng.standard_normal((192, 256, 3)) * 0.08).astype(np.float32)
    ref = estimate_noise_sigma(noisy)
    got = estimate_noise_sigma_torch(torch.from_numpy(noisy).permute(2, 0, 1)[None])
    assert np.allclose(got.flatten().numpy(), ref, rtol=0.05)


def test_monochrome_frames_are_told_apart_from_colour_ones():
    """An IR camera's night picture (neutral chroma: R = G = B, through H.264 too, or a
    slight tint) is monochrome; a colour frame is not, even a grey-looking one with light
    noise."""
    rng = np.random.default_rng(0)
    grey = (smooth_scene()[..., :1] * 255 + rng.normal(0, 20, (192, 256, 1))).clip(0, 255)
    mono = np.repeat(grey.astype(np.uint8), 3, axis=2)
    assert MONOCHROME_NOISE_GAIN > 1
    assert monochrome_gain(mono) == MONOCHROME_NOISE_GAIN
    assert monochrome_gain(mono.astype(np.float32) / 255) == MONOCHROME_NOISE_GAIN
    assert monochrome_gain(h264_roundtrip(np.stack([mono] * 2), 23)[1]) == MONOCHROME_NOISE_GAIN
    tinted = np.clip(mono.astype(int) + np.array([2, 0, -1]), 0, 255).astype(np.uint8)  # a tint
    assert monochrome_gain(tinted) == MONOCHROME_NOISE_GAIN
    light = np.clip(mono.astype(np.float32) + rng.normal(0, 2, mono.shape), 0, 255)
    assert monochrome_gain(light.astype(np.uint8)) == 1.0
    colour = (smooth_scene() * 255).astype(np.uint8)
    assert monochrome_gain(colour) == 1.0
    batch = torch.from_numpy(np.stack([mono, colour, tinted])).permute(0, 3, 1, 2).float() / 255
    gains = monochrome_gain_torch(batch).flatten().tolist()
    assert gains == [MONOCHROME_NOISE_GAIN, 1.0, MONOCHROME_NOISE_GAIN]


def test_compression_roundtrips_keep_shape():
    frames = (smooth_scene(48, 64) * 255).astype(np.uint8)[None].repeat(3, 0)
    assert jpeg_roundtrip(frames[0], 50).shape == frames[0].shape
    out = h264_roundtrip(frames, 28)
    assert out.shape == frames.shape
    assert np.abs(out.astype(int) - frames).mean() < 6


def test_isp_clips_render_a_camera_whose_noise_is_spread_over_neighbours():
    """A simulated camera's pair: the target is the noise-free rendering (colour kept
    through mosaic and demosaicking), the noisy clip differs from it by noise that is
    correlated between neighbouring pixels, unlike white noise; deterministic per seed; the
    trainer renders only colour clips."""
    from streamdenoise.lab.trainer import with_isp_noise
    from streamdenoise.models.noise import isp_clips

    colour = torch.from_numpy(smooth_scene(64, 64)).permute(2, 0, 1).float()
    clean = colour.expand(8, 2, 3, 64, 64).contiguous()
    target, noisy = isp_clips(clean, np.random.default_rng(3))
    again = isp_clips(clean, np.random.default_rng(3))
    assert torch.equal(target, again[0]) and torch.equal(noisy, again[1])
    inner = (..., slice(8, -8), slice(8, -8))  # away from the demosaicking's borders
    # the rendering keeps the scene's colours (sharpening moves edges, not flat colour)
    assert (target[inner].mean((0, 1, 3, 4)) - clean[inner].mean((0, 1, 3, 4))).abs().max() < 0.03
    residual = (noisy - target)[inner].numpy()
    assert residual.std() > 3 / 255
    white = np.random.default_rng(0).standard_normal(residual.shape)

    def neighbour_correlation(x: np.ndarray) -> float:
        return float(np.corrcoef(x[..., :, :-1].ravel(), x[..., :, 1:].ravel())[0, 1])

    assert neighbour_correlation(residual) > 0.2 > abs(neighbour_correlation(white))
    grey = torch.zeros(8, dtype=torch.bool)
    grey[:4] = True
    white_noisy = clean + 0.05 * torch.randn_like(clean)
    targets, clips = with_isp_noise(clean, white_noisy, grey, 1.0, seed=4)
    assert torch.equal(clips[:4], white_noisy[:4]) and torch.equal(targets[:4], clean[:4])
    assert not torch.equal(clips[4:], white_noisy[4:]) and not torch.equal(targets[4:], clean[4:])
