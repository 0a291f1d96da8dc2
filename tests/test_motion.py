"""Motion compensation of the recurrent state: global shift and dense flow, estimate and apply."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamdenoise.models.motion import (
    FlowEstimator,
    global_shift,
    grey_frame,
    grey_thumbnail,
    shift_state,
    warp_state,
)


def textured_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Detail at every scale, like a real scene (a smooth-only texture has no sharp
    correlation peak), a margin bigger than any shift taken from it."""
    rng = np.random.default_rng(seed)
    h, w = height + 16, width + 16
    scene = np.zeros((h, w, 3), np.float32)
    for scale in (1, 2, 4, 8, 16):
        octave = rng.normal(0, 1, (h // scale + 2, w // scale + 2, 3)).astype(np.float32)
        scene += scale**0.5 * cv2.resize(octave, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w]
    return np.clip(128 + 12 * scene, 0, 255)


def noisy_crop(scene: np.ndarray, y: int, x: int, h: int, w: int, sigma: float, seed: int):
    rng = np.random.default_rng(seed)
    crop = scene[y : y + h, x : x + w] + rng.normal(0, sigma, (h, w, 3))
    return np.clip(crop, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize(("h", "w"), [(80, 80), (720, 1280)])
@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (3, -2), (-5, 7)])
def test_global_shift_recovers_a_camera_pan_through_noise(h, w, dy, dx):
    scene = textured_scene(h, w)
    # the camera moves by (-dy, -dx): content moves by (dy, dx) in the frame
    prev = noisy_crop(scene, 8, 8, h, w, 25, seed=1)
    cur = noisy_crop(scene, 8 - dy, 8 - dx, h, w, 25, seed=2)
    assert global_shift(grey_thumbnail(prev), grey_thumbnail(cur), h) == (dy, dx)


def test_flat_frames_give_no_shift():
    flat = np.full((90, 160, 3), 128, np.uint8)
    assert global_shift(grey_thumbnail(flat), grey_thumbnail(flat), 90) == (0, 0)


def test_shift_state_moves_content_and_fills_from_the_current_frame():
    state = np.arange(6 * 5 * 6, dtype=np.float32).reshape(1, 6, 5, 6)
    frame = np.full((1, 3, 5, 6), -1, np.float32)
    out = shift_state(state, frame, 2, -1)
    np.testing.assert_array_equal(out[..., 2:, :5], state[..., :3, 1:])
    assert (out[..., :2, :] == -1).all() and (out[..., :, 5:] == -1).all()  # both groups
    assert shift_state(state, frame, 0, 0) is state
    np.testing.assert_array_equal(shift_state(state, frame, 9, 0), np.concatenate([frame] * 2, 1))
    # the same on torch tensors (training, CUDA backends), with or without a batch axis
    out_t = shift_state(torch.from_numpy(state[0]), torch.from_numpy(frame[0]), 2, -1)
    np.testing.assert_array_equal(out_t.numpy(), out[0])


def test_shifted_state_lines_up_with_the_next_frame():
    """Shifting the previous frame by the estimated shift reproduces the current one."""
    h, w = 96, 128
    scene = textured_scene(h, w)
    prev = scene[8 : 8 + h, 8 : 8 + w]
    cur = scene[5 : 5 + h, 12 : 12 + w]
    dy, dx = global_shift(grey_thumbnail(prev), grey_thumbnail(cur), h)
    aligned = shift_state(prev.transpose(2, 0, 1), cur.transpose(2, 0, 1), dy, dx)
    assert np.abs(aligned - cur.transpose(2, 0, 1)).max() < 1e-3
    assert np.abs(prev - cur).mean() > 5  # …which the unshifted frame does not


def test_flow_follows_a_walker_the_global_shift_cannot():
    """A textured block moves 6 px right over a still background (a person in front of a
    fixed camera): the warped previous frame matches the current one there too."""
    h, w, size, step = 240, 320, 80, 6
    background = textured_scene(h, w, seed=3)[:h, :w]
    walker = textured_scene(size, size, seed=4)[:size, :size] * 0.5 + 60
    prev, cur = background.copy(), background.copy()
    prev[80 : 80 + size, 100 : 100 + size] = walker
    cur[80 : 80 + size, 100 + step : 100 + step + size] = walker
    flow = FlowEstimator().flow(grey_frame(prev.astype(np.uint8)), grey_frame(cur.astype(np.uint8)))
    warped = warp_state(prev.transpose(2, 0, 1)[None].copy(), flow)[0].transpose(1, 2, 0)
    inner = (slice(88, 152), slice(114, 178))  # the walker's new place, away from its edges
    assert np.abs(warped[inner] - cur[inner]).mean() < 6
    assert np.abs(prev[inner] - cur[inner]).mean() > 15  # unaligned, the past is wrong there
    still = (slice(0, 30), slice(0, w))  # the background stays where it was
    assert np.abs(warped[still] - cur[still]).mean() < 0.5


def test_flow_between_mismatched_sizes_is_zero():
    flow = FlowEstimator().flow(np.zeros((10, 12), np.uint8), np.zeros((8, 12), np.uint8))
    assert flow.shape == (8, 12, 2) and not flow.any()


def test_grey_frame_takes_uint8_and_float_frames_alike():
    frame = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(grey_frame(frame), grey_frame(frame / np.float32(255)))


def test_warp_state_shifts_pads_and_runs_on_numpy_and_torch_alike():
    rng = np.random.default_rng(0)
    state = rng.random((1, 6, 16, 20), dtype=np.float32)
    # zero flow: the identity, also when the flow covers only the unpadded frame
    np.testing.assert_allclose(
        warp_state(state, np.zeros((13, 17, 2), np.float32)), state, atol=1e-4
    )
    # a whole-pixel flow moves content: out(x) = state(x + flow), edges replicated
    flow = np.zeros((16, 20, 2), np.float32)
    flow[..., 0] = 2  # dx
    out = warp_state(state, flow)
    np.testing.assert_allclose(out[..., :18], state[..., 2:], atol=1e-4)
    np.testing.assert_allclose(out[..., 18:], state[..., 19:].repeat(2, -1), atol=1e-4)
    # torch (training, CUDA backends) gives the same, in its own dtype
    out_t = warp_state(torch.from_numpy(state).to(torch.bfloat16), flow)
    assert out_t.dtype == torch.bfloat16
    np.testing.assert_allclose(out_t.float().numpy(), out, atol=1e-2)
    # a CPU backend's fp32 tensor takes OpenCV's path; training's (autograd) stays in torch
    np.testing.assert_array_equal(warp_state(torch.from_numpy(state.copy()), flow).numpy(), out)
    trained = torch.from_numpy(state.copy()).requires_grad_()
    warp_state(trained, torch.from_numpy(flow)).sum().backward()
    assert trained.grad is not None and trained.grad.abs().sum() > 0
    # a channels-last view (what some runtimes hand back) warps the same
    channels_last = np.ascontiguousarray(state.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(warp_state(channels_last, flow), out)
    # a batch with one flow per clip
    both = warp_state(np.concatenate([state, state]), np.stack([flow, np.zeros_like(flow)]))
    np.testing.assert_allclose(both[1], state[0], atol=1e-4)
