"""Fine-tuning to a camera: a few real steps on a tiny generated clip write a weights file
``run`` loads, the guard refuses a model that training wrecked, the camera's noise is
measured right, usage errors are one line, and ``eval`` scores real pairs as they are."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import make_clip, run_cli

from streamdenoise.lab.camera_noise import estimate_noise_model
from streamdenoise.lab.camera_tuning import FrameStore, heldback_indices
from streamdenoise.models import DEFAULT_MODEL
from streamdenoise.models.weights import load_weights

TINY = ("--patch", "32", "--batch", "1", "--minutes", "0.15", "--model", "spatial")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("ft") / "cam.mp4", frames=20, size=(96, 64))


def test_a_short_finetune_writes_weights_that_run_loads(tmp_path, clip):
    out = tmp_path / "mycam.pt"
    done = run_cli("finetune", str(clip), *TINY, "-o", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and out.is_file()
    _, blob = load_weights(out, expect_temporal=False)
    meta = blob["metadata"]
    info = meta["finetune"]
    assert info["source"] == str(clip) and info["start_model"] == "spatial"
    assert info["frames_seen"] == 20
    val = info["validation"]
    assert val["mode"] == "video" and val["frames_train"] + val["frames_heldback"] == 20
    assert val["heldback_loss"]["finetuned"] < val["heldback_loss"]["start"]
    assert meta["training_command"].startswith("streamdenoise finetune ")
    assert meta["base"]["name"] == "spatial" and meta["git_commit"]
    assert not out.with_suffix(".ckpt").exists()  # the checkpoint goes once the file is written
    video = tmp_path / "out.mp4"
    ran = run_cli("run", str(clip), "--model", str(out), "-o", str(video), "-q", timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert video.stat().st_size > 0


def test_by_default_the_recurrent_default_model_is_tuned_and_runs(tmp_path, clip):
    """No --model: the model ``run`` uses by default, recurrent, trained through its temporal
    path; the file runs through OpenVINO, whose graph moves the state along the flow."""
    out = tmp_path / "mycam.pt"
    args = ("--patch", "32", "--batch", "1", "--minutes", "0.15")
    done = run_cli("finetune", str(clip), *args, "-o", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    _, blob = load_weights(out, expect_temporal=True)
    info = blob["metadata"]["finetune"]
    assert info["start_model"] == DEFAULT_MODEL and blob["config"]["temporal"]
    assert (
        info["validation"]["heldback_loss"]["finetuned"]
        < info["validation"]["heldback_loss"]["start"]
    )
    video = tmp_path / "out.mp4"
    ran = run_cli(
        "run",
        str(clip),
        "--model",
        str(out),
        "--backend",
        "openvino",
        "-o",
        str(video),
        "-q",
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert video.stat().st_size > 0


def test_the_guard_refuses_a_wrecked_model_and_resume_continues(tmp_path, clip):
    """A learning rate of 1 wrecks the network in a step: nothing may be written. The
    checkpoint and the saved frames stay, and --resume picks them up without the source."""
    out = tmp_path / "mycam.pt"
    source = tmp_path / "copy.mp4"
    source.write_bytes(clip.read_bytes())
    done = run_cli("finetune", str(source), *TINY, "--lr", "1", "-o", str(out), timeout=300)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("streamdenoise: error: not written: the fine-tuned model is no better")
    assert "Traceback" not in done.stderr
    assert not out.exists() and not out.with_suffix(".pt.tmp").exists()
    ckpt = torch.load(out.with_suffix(".ckpt"), weights_only=False)
    assert ckpt["step"] >= 1
    assert not ckpt["history"][-1]["heldback_loss"] <= ckpt["best_loss"]  # worse, or NaN
    source.unlink()  # resuming reads the frames it saved, not the source
    again = run_cli(
        "finetune", str(source), *TINY, "--lr", "1", "--resume", "-o", str(out), timeout=300
    )
    assert "resuming at step" in again.stderr
    assert again.returncode == 1 and not out.exists()


def test_ctrl_c_keeps_the_checkpoint_and_resume_finishes_the_run(tmp_path, clip):
    """Signalled once its frames are kept (training is next), the real command ends after a
    step with its checkpoint saved and one line saying how to go on; --resume then finishes
    it from the saved frames and writes the weights."""
    out = tmp_path / "mycam.pt"
    args = ["finetune", str(clip), "--patch", "32", "--batch", "1", "--model", "spatial"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamdenoise", *args, "--minutes", "5", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not out.with_suffix(".frames.npz").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the frames were never kept"
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("streamdenoise: interrupted at step "), err
    assert last.endswith(f"checkpoint saved in {out.with_suffix('.ckpt')}: the same command "
                         "with --resume continues"), err  # fmt: skip
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))  # nothing half-written
    assert torch.load(out.with_suffix(".ckpt"), weights_only=False)["step"] >= 0
    again = run_cli(*args, "--minutes", "0.4", "--resume", "-o", str(out), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resuming at step" in again.stderr and out.is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["SRC", "--minutes", "1"], "-o OUT.pt is required"),
        (["SRC", "-o", "x.txt"], "must end in .pt"),
        (["SRC", "-o", "x.pt", "--minutes", "0"], "bad minutes '0': must be > 0"),
        (["-o", "x.pt"], "no SOURCE given"),
        (["SRC", "-o", "x.pt", "--patch", "40"], "--patch must be a multiple of 16"),
        (["SRC", "-o", "x.pt", "--resume"], "no checkpoint"),
        (["SRC", "-o", "no/such/dir/x.pt"], "does not exist"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path, clip, args, message):
    args = [str(clip) if a == "SRC" else a for a in args]
    done = run_cli("finetune", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_noise_model_measures_correlated_noise():
    """Noise with a known colour correlation, spatial correlation and a level that grows with
    brightness, over smooth ramps with an edge: the blind estimate finds all three, and its
    own draws match them."""
    rng = np.random.default_rng(0)
    h, w = 192, 256
    xx = np.mgrid[0:h, 0:w][1]
    ramp = 0.2 + 0.6 * xx / w  # brightness from 0.2 to 0.8, left to right
    base = np.stack([ramp, ramp * 0.9 + 0.05, np.full((h, w), 0.5)], -1)
    base[h // 2 :] += 0.1  # an edge the flat-block choice must avoid
    mix = np.linalg.cholesky(np.array([[1, 0.5, 0.5], [0.5, 1, 0.5], [0.5, 0.5, 1]]))

    def level(b: np.ndarray) -> np.ndarray:
        return 0.01 + 0.04 * b

    frames, unit = [], []
    for _ in range(6):
        white = rng.standard_normal((h, w, 3)) @ mix.T
        noise = cv2.GaussianBlur(white.astype(np.float32), (0, 0), 0.6)
        noise /= noise.std((0, 1))
        unit.append(noise)
        frames.append((np.clip(base + noise * level(base), 0, 1) * 255 + 0.5).astype(np.uint8))
    true_corr = np.mean([(n[:, 1:] * n[:, :-1]).mean() for n in unit])
    model = estimate_noise_model(frames)
    r = model.spatial.shape[1] // 2
    assert model.channel_correlation()[:, r, r + 1] == pytest.approx([true_corr] * 3, abs=0.08)
    assert model.colour[0, 1] == pytest.approx(0.5, abs=0.1)
    for b in (0.3, 0.7):
        std = model.std(torch.full((1, 3, 1, 1), b))[0, :2, 0, 0].numpy()  # R and G: ramps
        assert std == pytest.approx([level(b)] * 2, rel=0.2)
    flat = torch.full((1, 3, 128, 128), 0.5)
    d = model.sample(flat, torch.Generator().manual_seed(1))[0].numpy()
    assert d.std() == pytest.approx(level(0.5), rel=0.2)
    assert (d[:, :, 1:] * d[:, :, :-1]).mean() / d.var() == pytest.approx(true_corr, abs=0.08)
    assert np.corrcoef(d.reshape(3, -1))[0, 1] == pytest.approx(0.5, abs=0.1)


def test_frame_store_round_trip_and_holdout(tmp_path):
    segs = [np.full((3, 8, 8, 3), i, np.uint8) for i in range(4)]
    FrameStore(segs, 40).save(tmp_path / "f.npz")
    back = FrameStore.load(tmp_path / "f.npz")
    assert back.frames_seen == 40 and [s[0, 0, 0, 0] for s in back.segments] == [0, 1, 2, 3]
    assert heldback_indices(15, 0.2) == [2, 7, 12]


def test_eval_scores_real_pairs_as_they_are(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "pairs"
    folder.mkdir()
    noisy_psnr = []
    for name in ("a", "b"):
        clean = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3)).astype(np.uint8), (9, 9), 4)
        noise = cv2.GaussianBlur(rng.normal(0, 12, clean.shape), (3, 3), 0.7)
        noisy = np.clip(clean + noise, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{name}_clean.png"), clean)
        cv2.imwrite(str(folder / f"{name}_noisy.png"), noisy)
        noisy_psnr.append(10 * np.log10(255**2 / np.mean((noisy - clean.astype(float)) ** 2)))
    report = tmp_path / "r.json"
    done = run_cli(
        "eval", "--data", str(folder), "--backends", "identity,opencv-nlm", "--json", str(report)
    )
    assert done.returncode == 0, done.stderr
    rows = {r["backend"]: r for r in json.loads(report.read_text())["results"]}
    assert rows["identity"]["noise"] == "real" and rows["identity"]["sigma"] == "real"
    assert rows["identity"]["psnr"] == pytest.approx(np.mean(noisy_psnr), abs=0.01)
    assert rows["opencv-nlm"]["params"]["h"] > 0  # the best setting of its grid
    assert rows["opencv-nlm"]["psnr"] > rows["identity"]["psnr"]
    assert "| real |" in done.stdout or "real" in done.stdout


def test_eval_pairs_folder_with_a_lonely_file_is_one_line(tmp_path):
    folder = tmp_path / "pairs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_noisy.png"), np.zeros((8, 8, 3), np.uint8))
    done = run_cli("eval", "--data", str(folder), "--backends", "identity")
    assert done.returncode == 1 and "has no _noisy/_clean partner" in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Six small photos of different scenes with blurred (spatially correlated) noise: stills
    for the teacher mode."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:96, 0:128]
    for i in range(6):
        scene = np.stack([xx / 128 * (0.3 + 0.1 * i), yy / 96 * 0.5 + 0.2, np.full(xx.shape, 0.4)])
        scene = scene.transpose(1, 2, 0)
        scene[20 + 8 * i : 50 + 8 * i, 30:70] = [0.8, 0.7 - 0.1 * (i % 3), 0.3]
        noise = cv2.GaussianBlur(rng.standard_normal(scene.shape).astype(np.float32), (0, 0), 0.8)
        noisy = np.clip(scene + 0.05 * noise / noise.std(), 0, 1)
        cv2.imwrite(str(folder / f"{i}.png"), (noisy[:, :, ::-1] * 255 + 0.5).astype(np.uint8))
    return folder


STILLS = ("--mode", "stills", "--teacher", "nlm", "--patch", "32", "--batch", "2")


def test_a_teacher_finetune_on_stills_writes_weights_with_its_figures(tmp_path, photos):
    out = tmp_path / "cam.pt"
    done = run_cli(
        "finetune", str(photos), *STILLS, "--model", "spatial", "--minutes", "0.3",
        "-o", str(out), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "against the nlm references" in done.stdout
    _, blob = load_weights(out, expect_temporal=False)
    val = blob["metadata"]["finetune"]["validation"]
    assert val["method"] == "teacher-distillation" and val["teacher"] == "nlm"
    assert val["teacher_check"]["passed"] and val["steps"] > 0
    ref = val["reference_psnr"]
    assert ref["finetuned"] > ref["start"] and val["estimated_psnr"]["start"] is None
    assert blob["metadata"]["finetune"]["config"]["teacher"] == "nlm"
    assert len(val["noise_model"]["level_8bit"]) == 3


def test_the_guard_refuses_a_wrecked_student(tmp_path, photos):
    out = tmp_path / "cam.pt"
    done = run_cli(
        "finetune", str(photos), *STILLS, "--model", "spatial", "--minutes", "0.2",
        "--lr", "1", "-o", str(out), timeout=300,
    )  # fmt: skip
    assert done.returncode == 1 and "not written" in done.stderr.splitlines()[-1]
    assert not out.exists()


def test_a_teacher_worse_than_the_start_model_is_not_used(photos):
    """A teacher that returns flat grey loses its check against the shipped model; the run
    then trains on recorrupted pairs."""
    from streamdenoise.lab.camera_tuning import FinetuneConfig, Objective, split_frames
    from streamdenoise.models import load_model

    frames = np.stack([cv2.imread(str(p))[:, :, ::-1] for p in sorted(photos.glob("*.png"))])
    net, _ = load_model("spatial")
    cfg = FinetuneConfig(model="spatial", mode="stills", teacher="nlm", val_size=64)
    objective = Objective(split_frames(FrameStore([frames]), True, 0.2), True, cfg, net)
    said = []
    grey = objective.check_teacher(net, said.append, lambda crop: np.full(crop.shape, 0.5))
    assert not grey["passed"] and "do not beat the start model" in said[0]
    assert objective.check_teacher(net, said.append)["passed"]  # the real one does
