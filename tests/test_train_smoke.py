"""A few training steps on a tiny temporary dataset: writes loadable weights, resumes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from streamdenoise.models.data import TRAIN_IMAGE_DIRS, TRAIN_VIDEO_DIRS, VAL_VIDEO_DIRS
from streamdenoise.models.train import TrainConfig, train
from streamdenoise.models.weights import load_weights


def tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for sub in (*TRAIN_IMAGE_DIRS, *TRAIN_VIDEO_DIRS, *VAL_VIDEO_DIRS):
        folder = root / sub
        folder.mkdir(parents=True)
        base = cv2.GaussianBlur(rng.integers(0, 256, (72, 80, 3)).astype(np.uint8), (7, 7), 3)
        for t in range(6):
            cv2.imwrite(str(folder / f"{t:05d}.png"), np.roll(base, t, axis=1))
    return root


def test_a_few_steps_write_weights_and_resume(tmp_path):
    data = tiny_dataset(tmp_path / "data")
    cfg = TrainConfig(
        model="temporal",
        data=str(data),
        minutes=5,
        max_steps=2,
        batch=2,
        frames=2,
        patch=32,
        val_size=32,
        val_frames=3,
        checkpoint=str(tmp_path / "ckpt"),
        out=str(tmp_path / "temporal.pt"),
    )
    metrics = train(cfg, command="test", log=lambda _: None)
    assert metrics["steps"] == 2
    _, blob = load_weights(tmp_path / "temporal.pt", expect_temporal=True)
    assert blob["metadata"]["training_command"] == "test"
    assert blob["metadata"]["final_validation"] == metrics
    resumed = TrainConfig(
        **{**cfg.__dict__, "resume": str(tmp_path / "ckpt" / "temporal-last.pt"), "max_steps": 3}
    )
    assert train(resumed, log=lambda _: None)["steps"] == 3
