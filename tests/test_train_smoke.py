"""Training: a few steps on a tiny temporary dataset (weights written, resumable), and the
spatial → temporal initialisation."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from streamdenoise.errors import UserError
from streamdenoise.lab.data import (
    TRAIN_IMAGE_DIRS,
    VAL_VIDEO_DIRS,
    ClipSampler,
)
from streamdenoise.lab.trainer import (
    TrainConfig,
    TrainingInterrupted,
    default_net_config,
    init_from,
    init_note,
    train,
    training_device,
)
from streamdenoise.models.nets import NetConfig, build_net, initial_state
from streamdenoise.models.weights import load_weights, save_weights


def tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for sub in (*TRAIN_IMAGE_DIRS, "train/videos/davis-a", "train/videos/clip-b", *VAL_VIDEO_DIRS):
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
        unclipped_noise=0.5,  # float frames past [0, 1] go through the optical flow too
        isp_noise=0.5,  # and clips rendered by a simulated camera, with their own targets
    )
    metrics = train(cfg, command="test", log=lambda _: None)
    assert metrics["steps"] == 2
    _, blob = load_weights(tmp_path / "temporal.pt", expect_temporal=True)
    assert blob["metadata"]["training_command"] == "test"
    assert blob["metadata"]["device"] == str(training_device("auto"))
    assert blob["metadata"]["train_config"]["unclipped_noise"] == 0.5
    assert blob["metadata"]["train_config"]["isp_noise"] == 0.5
    assert blob["metadata"]["final_validation"] == metrics
    resumed = TrainConfig(
        **{**cfg.__dict__, "resume": str(tmp_path / "ckpt" / "temporal-last.pt"), "max_steps": 3}
    )
    assert train(resumed, log=lambda _: None)["steps"] == 3


def test_a_stop_request_saves_the_checkpoint_and_resume_continues_from_it(tmp_path):
    """Stopped after its second step, the run raises with its checkpoint at that step and
    writes no weights; resumed, it goes on from step 2."""
    data = tiny_dataset(tmp_path / "data")
    cfg = TrainConfig(
        model="tiny", data=str(data), minutes=5, batch=2, patch=32, val_size=32,
        val_frames=3, checkpoint=str(tmp_path / "ckpt"), out=str(tmp_path / "tiny.pt"),
    )  # fmt: skip
    stop = threading.Event()

    def after_step(_fraction, step, _loss, _val) -> None:
        if step == 2:
            stop.set()

    with pytest.raises(TrainingInterrupted) as stopped:
        train(cfg, log=lambda _: None, progress=after_step, stop=stop)
    assert stopped.value.step == 2
    assert stopped.value.checkpoint == tmp_path / "ckpt" / "tiny-last.pt"
    assert torch.load(stopped.value.checkpoint, weights_only=False)["step"] == 2
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["tiny-last.pt"]
    assert not (tmp_path / "tiny.pt").exists()
    resume = {"resume": str(stopped.value.checkpoint), "max_steps": 3}
    assert train(TrainConfig(**{**cfg.__dict__, **resume}), log=lambda _: None)["steps"] == 3
    assert (tmp_path / "tiny.pt").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_recurrent_model_trains_and_resumes_on_a_cuda_gpu(tmp_path):
    """The network, its clips and its validation on the GPU (the motion measured on the
    host): weights that load on the CPU, a checkpoint that resumes there."""
    data = tiny_dataset(tmp_path / "data")
    cfg = TrainConfig(
        model="temporal", data=str(data), minutes=5, max_steps=2, batch=2, frames=2, patch=32,
        val_size=32, val_frames=3, checkpoint=str(tmp_path / "ckpt"),
        out=str(tmp_path / "temporal.pt"), device="cuda",
    )  # fmt: skip
    assert train(cfg, log=lambda _: None)["steps"] == 2
    _, blob = load_weights(tmp_path / "temporal.pt", expect_temporal=True)
    assert blob["metadata"]["device"] == "cuda"
    resume = {"resume": str(tmp_path / "ckpt" / "temporal-last.pt"), "max_steps": 3}
    assert train(TrainConfig(**{**cfg.__dict__, **resume}), log=lambda _: None)["steps"] == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
def test_training_on_a_gpu_that_is_not_there_is_one_line(tmp_path, capsys):
    from streamdenoise.cli import main

    assert main(["train", "--device", "cuda", "--checkpoint-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["streamdenoise: error: --device cuda: torch sees no CUDA GPU here "
                   "(--device cpu)"]  # fmt: skip
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_train_command_with_its_checkpoint_saved(tmp_path, signum):
    """The real command, signalled once training has started: one line naming the
    checkpoint and how to resume, exit 130, no weights file, no half-written file."""
    data = tiny_dataset(tmp_path / "data")
    command = [sys.executable, "-m", "streamdenoise", "train", "--model", "tiny", "--data",
               str(data), "--minutes", "5", "--batch", "2", "--patch", "32",
               "--checkpoint-dir", "ckpt", "--out", "tiny.pt"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "STREAMDENOISE_DATA": str(data)},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (tmp_path / "ckpt").is_dir() and proc.poll() is None:  # the loop is next
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("streamdenoise: interrupted at step "), err
    assert last.endswith("; checkpoint saved: --resume ckpt/tiny-last.pt continues"), err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["tiny-last.pt"]
    assert not (tmp_path / "tiny.pt").exists()


@pytest.mark.parametrize(
    "config",
    [
        default_net_config("temporal"),  # accumulator state, flow-aligned
        default_net_config("fixed"),  # accumulator state, shift-aligned
    ],
    ids=["flow", "shift"],
)
def test_temporal_model_initialised_from_spatial_starts_as_the_spatial_model(tmp_path, config):
    """After a reset (the state is the frame itself) it is exactly the spatial model."""
    torch.manual_seed(0)
    spatial = build_net(NetConfig(temporal=False)).eval()
    with torch.no_grad():
        spatial.tail.weight.normal_(0, 0.01)  # make the residual visible
    save_weights(tmp_path / "spatial.pt", "spatial", spatial, {})
    temporal = build_net(config).eval()
    init_from(temporal, tmp_path / "spatial.pt")
    x = torch.rand(1, 3, 32, 48)
    sigma = torch.full((1, 3, 1, 1), 0.1)
    with torch.no_grad():
        expected = spatial(x, sigma)
        assert not torch.allclose(expected, x, atol=1e-4)
        out = temporal(x, sigma, initial_state(x, config.state_channels))
        assert out.shape[1] == config.state_channels
        assert torch.allclose(out[:, :3], expected, atol=1e-5)


def test_a_grown_network_starts_exactly_where_its_source_left_off(tmp_path):
    """``fast`` is ``small-spatial`` with more body convs: seeded from it, the new convs
    start as the identity and the output is unchanged; the weights file says where it began."""
    torch.manual_seed(0)
    source = build_net(default_net_config("small-spatial")).eval()
    with torch.no_grad():
        source.tail.weight.normal_(0, 0.01)
    save_weights(tmp_path / "small.pt", "small-spatial", source, {"training_command": "x"})
    grown = build_net(default_net_config("fast")).eval()
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in source.parameters())
    init_from(grown, tmp_path / "small.pt")
    x, sigma = torch.rand(1, 3, 64, 96), torch.full((1, 3, 1, 1), 0.1)
    with torch.no_grad():
        assert torch.allclose(grown(x, sigma), source(x, sigma), atol=1e-6)
    note = init_note(tmp_path / "small.pt")
    assert note["file"] == "small.pt" and note["training_command"] == "x"
    assert len(note["sha256_12"]) == 12


def test_a_thinner_network_is_seeded_by_cutting_a_wider_one(tmp_path):
    """``tiny`` from ``fast``: layers of the same shape are copied, wider ones keep their
    leading channels, the 3×3 output conv its centre tap as ``tiny``'s 1×1 one."""
    torch.manual_seed(0)
    source = build_net(default_net_config("fast")).eval()
    save_weights(tmp_path / "fast.pt", "fast", source, {"training_command": "x"})
    thin = build_net(default_net_config("tiny")).eval()
    init_from(thin, tmp_path / "fast.pt")
    assert thin.tail.kernel_size == (1, 1)
    assert torch.equal(thin.tail.weight[:, :, 0, 0], source.tail.weight[:, :, 1, 1])
    assert torch.equal(thin.encs[1][0].weight, source.encs[1][0].weight)  # same shape
    assert torch.equal(thin.encs[0][0].weight, source.encs[0][0].weight[:16, :16])
    assert torch.equal(thin.ups[0].weight, source.ups[0].weight[:16])  # 24 → 16 inputs


def test_each_model_name_trains_its_own_architecture():
    assert not default_net_config("spatial").temporal
    temporal, fixed = default_net_config("temporal"), default_net_config("fixed")
    assert (temporal.temporal, temporal.motion) == (True, "flow")
    assert (fixed.temporal, fixed.motion) == (True, "shift")


def test_sampler_draws_every_orientation_and_the_asked_share_of_video_clips():
    """A ramp image (5 levels per row, 1 per column): the steps from a clip's corner pixel to
    its right and lower neighbours tell its orientation wherever it was cut, and all eight
    must show up; no clip may come from the video (a constant) when its share is zero."""
    rows, columns = np.mgrid[0:40, 0:40]
    image = np.repeat((5 * rows + columns)[..., None], 3, axis=2).astype(np.uint8)
    video = np.full((4, 40, 40, 3), 255, np.uint8)
    orientations = set()
    for share in (0.0, 1.0):
        sampler = ClipSampler([image], [video], share)
        for seed in range(10):
            for clip in sampler.batch(seed, 8, 1, 16)[:, 0, 0] * 255:
                assert bool((clip == 255).all()) == (share == 1.0)
                right, down = (clip[0, 1] - clip[0, 0]).item(), (clip[1, 0] - clip[0, 0]).item()
                orientations.add((round(right), round(down)))
    orientations.discard((0, 0))  # the video's constant clips
    assert orientations == {(a, b) for a in (-1, 1) for b in (-5, 5)} | {
        (b, a) for a in (-1, 1) for b in (-5, 5)
    }


def test_long_clips_come_from_videos_long_enough_for_them():
    """Frame k is the grey level 10·k of the long video, 200 + k of the short one: the levels
    of a clip show which video it came from and its step between frames."""
    short = np.stack([np.full((24, 24, 3), 200 + k, np.uint8) for k in range(6)])
    long = np.stack([np.full((24, 24, 3), 10 * k, np.uint8) for k in range(12)])
    sampler = ClipSampler([], [short, long], 1.0)
    steps = set()
    for seed in range(6):
        for clip in sampler.batch(seed, 8, 8, 16)[:, :, 0, 0, 0] * 255:
            levels = clip.round().int().tolist()
            assert max(levels) < 200  # never the 6-frame video
            steps |= {abs(b - a) for a, b in itertools.pairwise(levels)}
    assert steps == {10}  # 8 frames of 12: every frame, never every other one
    with pytest.raises(UserError, match="no training video has 13 frames"):
        sampler.batch(0, 1, 13, 16)


def test_training_loss_is_charbonnier_or_mean_squared_error():
    from streamdenoise.lab.trainer import training_loss

    clean = torch.zeros(2, 3, 4, 4)
    out = clean + 0.1
    assert training_loss(out, clean, "mse").item() == pytest.approx(0.01)
    assert training_loss(out, clean, "charbonnier").item() == pytest.approx(0.1, rel=1e-3)


def test_a_wider_network_grown_from_a_thinner_one_starts_as_it_and_its_new_channels_learn(
    tmp_path,
):
    """``wide`` (twice ``nano``'s channels) seeded by ``nano``: the same output at step 0,
    and after a few steps the new channels' weights have moved (were they zero on both
    sides, they would never receive a gradient)."""
    torch.manual_seed(0)
    source = build_net(default_net_config("nano")).eval()
    save_weights(tmp_path / "nano.pt", "nano", source, {"training_command": "x"})
    wide = build_net(default_net_config("wide"))
    init_from(wide, tmp_path / "nano.pt")
    x, sigma = torch.rand(2, 3, 64, 64), torch.full((2, 3, 1, 1), 0.1)
    with torch.no_grad():
        assert torch.allclose(wide.eval()(x, sigma), source(x, sigma), atol=1e-6)
    conv = wide.encs[0][0]  # 64 channels where nano has 32
    before = conv.weight.detach().clone()
    opt = torch.optim.AdamW(wide.train().parameters(), lr=1e-3, weight_decay=0.0)
    for _ in range(3):
        clean = torch.rand(2, 3, 64, 64)
        loss = (wide(clean + 0.1 * torch.randn_like(clean), sigma) - clean).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    old, new = before.shape[0] // 2, conv.weight.detach()
    assert (new[old:] - before[old:]).abs().max() > 0  # the new outputs learn
    assert (new[:old, old:] - before[:old, old:]).abs().max() > 0  # and are heard


def test_train_command_writes_into_the_current_folder_by_default(tmp_path, monkeypatch):
    """Without --out the weights land in ./MODEL.pt, never over the packaged tier of that
    name (a stray run there would become what `--model auto` ships)."""
    from streamdenoise.cli import main
    from streamdenoise.models import weights_path

    data = tiny_dataset(tmp_path / "data")
    shipped = weights_path("tiny")
    packaged = shipped.read_bytes()
    monkeypatch.chdir(tmp_path)
    args = ["train", "--model", "tiny", "--data", str(data), "--minutes", "0.003"]
    try:
        assert main([*args, "--batch", "2", "--patch", "32", "--checkpoint-dir", "ckpt"]) == 0
        assert load_weights(tmp_path / "tiny.pt")[1]["metadata"]["training_command"]
        assert shipped.read_bytes() == packaged
    finally:  # a regression must not leave the checkout with other weights
        if shipped.read_bytes() != packaged:
            shipped.write_bytes(packaged)
