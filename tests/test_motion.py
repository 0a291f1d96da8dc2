"""Global motion compensation of the recurrent state: estimate, shift, and the backend's use."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from streamdenoise.models.motion import global_shift, grey_thumbnail, shift_state


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
