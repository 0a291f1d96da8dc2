"""Two-pass denoising (``--two-pass``): a recurrent model forward and backward, averaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamdenoise.backends.two_pass import BLOCK, LOOKAHEAD
from streamdenoise.errors import UsageError
from streamdenoise.runtime import create_denoiser

VAL_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "val" / "videos"


def two_pass(model: str = "wide-temporal"):
    return create_denoiser("torch", model=model, two_pass=True)


def test_frames_come_back_in_order_one_block_late_and_all_at_the_flush() -> None:
    denoiser = two_pass()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(BLOCK * 2 + 3)]
    try:
        futures = [denoiser.submit(f) for f in frames[: BLOCK + LOOKAHEAD - 1]]
        assert not any(f.done() for f in futures)  # nothing before the window is full
        futures.append(denoiser.submit(frames[BLOCK + LOOKAHEAD - 1]))
        assert [f.done() for f in futures] == [True] * BLOCK + [False] * LOOKAHEAD
        futures += [denoiser.submit(f) for f in frames[BLOCK + LOOKAHEAD :]]
        denoiser.flush()
        assert all(f.done() for f in futures) and len(futures) == len(frames)
        assert all(f.result().shape == (48, 64, 3) for f in futures)
    finally:
        denoiser.close()


@pytest.mark.skipif(not VAL_VIDEOS.is_dir(), reason="needs ../shared/datasets/val/videos")
def test_two_passes_are_cleaner_than_the_forward_one_on_real_video() -> None:
    """On Vid4 crops at σ = 25 the average of both directions beats the causal pass it
    contains (docs/models.md measures +0.4 dB on whole frames)."""
    from streamdenoise.lab.image_metrics import psnr
    from streamdenoise.lab.quality import Sequence, load_sequences, make_noisy

    gains = []
    for index, seq in enumerate(load_sequences(VAL_VIDEOS, max_frames=12)):
        crop = Sequence(seq.name, [np.ascontiguousarray(f[96:288, 96:352]) for f in seq.frames])
        noisy = make_noisy(crop, index, 25.0, "awgn", seed=0)[0]
        forward = create_denoiser("torch", model="wide-temporal")
        both = two_pass()
        try:
            causal = [forward.process(f) for f in noisy]
            futures = [both.submit(f) for f in noisy]
            both.flush()
        finally:
            forward.close()
            both.close()
        for one, two, clean in zip(causal, futures, crop.frames, strict=True):
            gains.append(psnr(two.result(), clean) - psnr(one, clean))
    assert np.mean(gains) > 0.2, [round(g, 2) for g in gains]


@pytest.mark.parametrize(
    ("backend", "model"), [("torch", "wide"), ("torch", "nano"), ("hqdn3d", None)]
)
def test_a_model_without_a_past_is_refused_in_one_line(backend: str, model: str | None) -> None:
    with pytest.raises(UsageError, match="--two-pass") as caught:
        create_denoiser(backend, model=model, two_pass=True)
    assert "\n" not in str(caught.value)


def test_process_says_to_submit_and_flush() -> None:
    denoiser = two_pass()
    try:
        with pytest.raises(UsageError, match="submit"):
            denoiser.process(np.zeros((16, 16, 3), np.uint8))
    finally:
        denoiser.close()


def test_auto_means_the_strongest_tier() -> None:
    from streamdenoise.models.tiers import shipped_ladder

    denoiser = create_denoiser("torch", model="auto", two_pass=True)
    try:
        assert denoiser.describe()["model"] == shipped_ladder()[-1].name
        assert denoiser.describe()["two_pass"] == {"block": BLOCK, "lookahead": LOOKAHEAD}
    finally:
        denoiser.close()
