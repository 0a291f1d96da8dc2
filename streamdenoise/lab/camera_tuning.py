"""Self-supervised fine-tuning of a trained model on a user's own noisy footage.

No clean frames exist at the user's end, so both the training signal and the check that
guards the result come from the noisy frames alone:

- **video** (consecutive frames of one scene): Noise2Noise (Lehtinen et al. 2018) on the
  *next* frame. Sensor noise is independent from frame to frame, so the next frame, warped
  onto the current one by dense optical flow measured on the noisy frames, is a second noisy
  view of the same scene. The models are causal (frame t's output never sees frame t+1), so
  recurrent models are trained through their temporal path, state alignment included, with
  the same loss. Pixels the warp cannot explain (occlusions, things that moved) are masked out.
- **stills** (one shot per scene): the camera's noise is measured on flat regions of the
  footage — its level per channel, how it grows with brightness, its colour correlation and
  its *spatial* correlation (demosaicking and in-camera processing leave pixel noise far from
  white). A slow reference denoiser told that noise (:mod:`streamdenoise.lab.camera_teacher`)
  denoises crops of the training photos once, and the network learns to follow it. Without
  a teacher (``--teacher none``, or one that does not beat the start model on recorrupted
  held-back crops): Recorrupted-to-Recorrupted (Pang et al. 2021), where fresh noise ``z``
  with the measured statistics makes a pair ``(y + a·z, y − z/a)`` whose two noise terms
  are uncorrelated: a Noise2Noise pair from a single frame.

The **guard** is the same loss on frames held back from training, on fixed crops and fixed
noise draws, computed for the starting model before training and for every candidate after.
For next-frame and recorrupted pairs, E‖f(input) − target‖² = E‖f(input) − clean‖² +
(target-noise power), and the second term does not depend on the model: differences of the
loss between two models are differences of their true squared error on those frames. With a
teacher the target is its reference, so the guard measures how closely the network follows a
teacher already checked to beat the start model. The best candidate is written only if it
beats the starting model; otherwise nothing is written.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from streamdenoise.errors import SourceError, UsageError, UserError
from streamdenoise.lab.camera_noise import estimate_noise_model
from streamdenoise.lab.camera_teacher import TEACHERS, Teacher, make_teacher
from streamdenoise.lab.trainer import (
    TrainingInterrupted,
    frame_sigmas,
    optimizer_step,
    resumable_state,
    run_clip,
)
from streamdenoise.models.motion import FlowEstimator, grey_frame, warp_state
from streamdenoise.models.nets import UNetDenoiser
from streamdenoise.models.weights import git_commit, save_weights, save_whole
from streamdenoise.settings import default

MODES = ("auto", "video", "stills")
# Mean absolute difference of 1/8-scale thumbnails (0–1 scale) above which two consecutive
# frames show different scenes (the backends' scene-cut threshold, a little lower).
STILLS_THRESHOLD = 0.08
# R2R recorruption strength (the paper's choice): inputs carry 1 + a² times the noise power.
R2R_ALPHA = 0.5
# Stills with a teacher: the references may take at most this share of --minutes, and are
# computed on crops of this side (the held-back ones first, the guard's central crops).
TEACHER_SHARE = 0.5
TEACHER_CROP = 256


# -- frames ------------------------------------------------------------------------------------
@dataclass
class FrameStore:
    """Segments of consecutive frames (uint8 H×W×3 RGB), all of one size."""

    segments: list[np.ndarray]
    frames_seen: int = 0

    @property
    def frames(self) -> int:
        return sum(len(s) for s in self.segments)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        segments = {f"segment_{i}": s for i, s in enumerate(self.segments)}
        np.savez(tmp, frames_seen=self.frames_seen, **segments)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FrameStore:
        with np.load(path) as data:
            keys = [k for k in data.files if k.startswith("segment_")]
            keys.sort(key=lambda k: int(k.removeprefix("segment_")))
            return cls([data[k] for k in keys], int(data["frames_seen"]))


def collect_frames(
    source: str,
    max_frames: int,
    memory_mb: float,
    segment: int,
    seconds: float | None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> FrameStore:
    """Read ``source`` (anything ``run`` reads) into at most ``max_frames`` frames and
    ``memory_mb`` of RAM, as segments of ``segment`` consecutive frames.

    Sources longer than the budget are sampled uniformly by reservoir sampling of whole
    segments, so the memory used never depends on how long the source runs. A live source is
    read for ``seconds`` (files and folders to their end unless ``seconds`` is given).
    """
    import threading

    from streamdenoise.options import SourceOptions
    from streamdenoise.sources import open_source

    src = open_source(source, SourceOptions(reconnect_max=0))
    src.open()
    rng = np.random.default_rng(seed)
    kept: list[np.ndarray] = []
    current: list[np.ndarray] = []
    capacity: int | None = None
    complete, seen = 0, 0
    stop = threading.Event()
    start = time.monotonic()
    if seconds is None and src.live:
        seconds = 60.0

    def close_segment() -> None:
        nonlocal complete
        if not current:
            return
        seg = np.stack(current)
        current.clear()
        complete += 1
        if len(kept) < capacity:
            kept.append(seg)
        elif (j := int(rng.integers(complete))) < capacity:
            kept[j] = seg

    try:
        for frame in src.frames(stop):
            image = frame.image
            if capacity is None:
                by_memory = int(memory_mb * 2**20 // image.nbytes)
                capacity = max(1, min(max_frames, by_memory) // segment)
            if current and (frame.discontinuity or image.shape != current[0].shape):
                close_segment()
            if kept and image.shape != kept[0].shape[1:]:
                continue  # one frame size per run: the first one the source delivered
            current.append(image)
            seen += 1
            if len(current) == segment:
                close_segment()
            if progress:
                progress(seen)
            if seconds is not None and time.monotonic() - start >= seconds:
                break
    finally:
        stop.set()
        src.close()
    if current and (not kept or current[0].shape == kept[0].shape[1:]):
        close_segment()
    if not kept:
        raise SourceError(f"no frames read from {src.describe()}")
    return FrameStore(kept, seen)


def looks_like_stills(store: FrameStore) -> bool:
    """True when consecutive frames mostly show different scenes (a folder of photos)."""
    diffs = []
    for seg in store.segments:
        thumbs = [
            cv2.resize(f, None, fx=1 / 8, fy=1 / 8, interpolation=cv2.INTER_AREA) for f in seg
        ]
        pairs = itertools.pairwise(thumbs)
        diffs += [np.abs(a.astype(np.float32) - b).mean() / 255 for a, b in pairs]
    return not diffs or float(np.median(diffs)) > STILLS_THRESHOLD


# -- fine-tuning -------------------------------------------------------------------------------
@dataclass
class FinetuneConfig:
    """The settings of one run; defaults from the settings table (as the CLI's)."""

    model: str = default("finetune_model")
    minutes: float = default("finetune_minutes")
    mode: str = default("mode")
    batch: int = default("finetune_batch")
    frames: int = 4  # frames per clip (recurrent models; spatial ones see single frames)
    patch: int = default("finetune_patch")
    lr: float = default("finetune_lr")
    seed: int = default("seed")
    holdout: float = default("holdout")
    teacher: str = default("teacher")
    val_every_s: float = 60.0
    val_size: int = 256
    max_steps: int | None = None
    bf16: bool = True


@dataclass
class Split:
    train: list[np.ndarray]
    held: list[np.ndarray]


def split_frames(store: FrameStore, stills: bool, holdout: float) -> Split:
    """Hold back every k-th unit (a photo for stills, a segment for video), k = 1/holdout."""
    units = [f[None] for seg in store.segments for f in seg] if stills else list(store.segments)
    if len(units) < 2:
        raise UserError(
            "too little footage: fine-tuning needs at least two "
            + ("images" if stills else "segments of consecutive frames")
        )
    held_ids = set(heldback_indices(len(units), holdout))
    held = [u for i, u in enumerate(units) if i in held_ids]
    train = [u for i, u in enumerate(units) if i not in held_ids]
    return Split(train, held)


def heldback_indices(units: int, holdout: float) -> list[int]:
    """Which of ``units`` photos or segments (in source order) are held back: every k-th,
    k = 1/holdout, starting in the middle of the first k so both ends stay in training."""
    every = max(2, round(1 / holdout))
    return [i for i in range(units) if i % every == every // 2]


def _orient(x: np.ndarray, code: int) -> np.ndarray:
    """One of the eight orientations of (…, H, W, C) arrays."""
    if code & 1:
        x = x[..., ::-1, :, :]
    if code & 2:
        x = x[..., :, ::-1, :]
    if code & 4:
        x = np.swapaxes(x, -3, -2)
    return np.ascontiguousarray(x)


def _to_tensor(frames: np.ndarray, scale: float = 255.0) -> torch.Tensor:
    """(…, H, W, 3) uint8 (or float, ``scale`` 1) → (…, 3, H, W) float on [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).movedim(-1, -3).float() / scale


def n2n_targets(clip: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """For a clip (T+1, H, W, 3) uint8: frame t+1 warped onto frame t, for t < T, and the
    mask of pixels the warp explains. Returns (targets (T, 3, H, W), mask (T, 1, H, W))."""
    flow = FlowEstimator()
    targets, masks = [], []
    for cur, nxt in itertools.pairwise(clip):
        f = flow.flow(grey_frame(nxt), grey_frame(cur))  # where each pixel of cur is in nxt
        warped = warp_state(_to_tensor(nxt)[None].numpy(), f)[0]
        here = _to_tensor(cur).numpy()
        diff = np.abs(
            cv2.blur(warped.transpose(1, 2, 0), (7, 7)) - cv2.blur(here.transpose(1, 2, 0), (7, 7))
        )
        diff = diff.mean(2)
        masks.append(diff < 4 * np.median(diff) + 2 / 255)
        targets.append(warped)
    return torch.from_numpy(np.stack(targets)), torch.from_numpy(np.stack(masks))[:, None].float()


class Objective:
    """The training pairs for one footage kind, and the fixed held-back set the guard scores.

    Video: next-frame Noise2Noise. Stills: with a teacher, the noisy crops and the teacher's
    references for them (:meth:`teach` computes those first); without, recorrupted pairs
    from the measured noise."""

    def __init__(self, split: Split, stills: bool, cfg: FinetuneConfig, net: UNetDenoiser) -> None:
        self.split, self.stills, self.cfg = split, stills, cfg
        self.clip = cfg.frames if (net.config.temporal and not stills) else 1
        self.multiple = net.config.multiple
        h, w = split.train[0].shape[1:3]
        if min(h, w) < self.multiple:
            raise UserError(f"frames of {w}×{h} are too small to fine-tune on")
        self.noise = estimate_noise_model([f for u in split.train for f in u]) if stills else None
        self.teacher_name, self.teacher = (
            make_teacher(cfg.teacher, self.noise) if stills else ("none", None)
        )
        self.references: dict = {"held": [], "train": []}
        self.val: list = []

    def prepare(
        self,
        net: UNetDenoiser,
        references: dict | None,
        deadline: float,
        log: Callable[[str], None],
        stop: threading.Event | None = None,
    ) -> None:
        """Make the held-back set: the teacher's references first (or the saved ones), if
        the teacher passes its check against ``net``; ``stop`` set ends the references
        early, as the deadline does."""
        if self.teacher is not None:
            if references is None:
                references = {"check": self.check_teacher(net, log)}
                if references["check"]["passed"]:
                    references |= self.teach(deadline, log, stop)
            self.references = references
            if not references["check"]["passed"]:
                self.teacher_name, self.teacher = "none", None
        self.val = self._validation_set()

    @torch.no_grad()
    def check_teacher(
        self, net: UNetDenoiser, log: Callable[[str], None], teacher: Teacher | None = None
    ) -> dict:
        """Does the teacher beat the start model? Both denoise the same recorrupted central
        crops of the held-back photos and are scored against the matching second views
        (:meth:`pairs`): a teacher that is worse than the model it would teach is not used.
        ``teacher`` (default: this run's) is told the recorrupted crops' higher noise level."""
        if teacher is None:
            noisier = self.noise.scaled(math.hypot(1, R2R_ALPHA))
            teacher = make_teacher(self.teacher_name, noisier)[1]
        net.eval()
        losses: dict[str, list[float]] = {"teacher": [], "start": []}
        for i, unit in enumerate(self.split.held):
            crop = self._central(unit[0], self.cfg.val_size)[None]
            inputs, targets, mask = self.pairs([crop], seed=i)
            noisy = (inputs.clamp(0, 1) * 255).round() / 255
            ref = teacher((noisy[0, 0] * 255).byte().permute(1, 2, 0).numpy())
            losses["teacher"].append(loss_of(_to_tensor(ref, 1.0)[None, None], targets, mask))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
                out = run_clip(net, noisy, frame_sigmas(noisy))
            losses["start"].append(loss_of(out, targets, mask))
        check: dict = {k: float(np.mean(v)) for k, v in losses.items()}
        check["passed"] = check["teacher"] < check["start"]
        if not check["passed"]:
            log(
                f"the {self.teacher_name} references do not beat the start model on the "
                "held-back photos: training on recorrupted pairs instead"
            )
        return check

    def teach(
        self, deadline: float, log: Callable[[str], None], stop: threading.Event | None = None
    ) -> dict[str, list]:
        """The teacher's references: the guard's central crop of every held-back photo, then
        random crops of the training photos, in turn, until each has been covered about once
        or ``deadline`` (time.monotonic) has passed — but at least one."""
        refs: dict[str, list] = {"held": [], "train": []}
        for unit in self.split.held:
            crop = self._central(unit[0], self.cfg.val_size)
            refs["held"].append((crop, self.teacher(crop)))
        rng = np.random.default_rng([self.cfg.seed, 7])
        frames = [u[0] for u in self.split.train]
        h, w = frames[0].shape[:2]
        side = min(TEACHER_CROP, h, w) // self.multiple * self.multiple
        wanted = len(frames) * max(1, round(h * w / side**2))
        order = rng.permutation(len(frames))
        begin = time.monotonic()

        def more_time() -> bool:
            return time.monotonic() < deadline and not (stop is not None and stop.is_set())

        while len(refs["train"]) < wanted and (not refs["train"] or more_time()):
            frame = frames[order[len(refs["train"]) % len(frames)]]
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = frame[y : y + side, x : x + side]
            refs["train"].append((crop, self.teacher(crop)))
            if len(refs["train"]) % max(1, wanted // 10) == 0:
                log(f"{self.teacher_name} references: {len(refs['train'])} of {wanted} crops")
        log(
            f"{self.teacher_name} references: {len(refs['train'])} training and "
            f"{len(refs['held'])} held-back crops of {side} px in "
            f"{(time.monotonic() - begin) / 60:.1f} min"
        )
        return refs

    def _central(self, frame: np.ndarray, size: int) -> np.ndarray:
        h, w = frame.shape[:2]
        s = min(size, h, w) // self.multiple * self.multiple
        y, x = (h - s) // 2, (w - s) // 2
        return frame[y : y + s, x : x + s]

    def _crop(self, unit: np.ndarray, rng: np.random.Generator, size: int, t: int) -> np.ndarray:
        h, w = unit.shape[1:3]
        size = min(size, h, w) // self.multiple * self.multiple
        start = int(rng.integers(0, len(unit) - t + 1))
        y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        return unit[start : start + t, y : y + size, x : x + size]

    def pairs(self, crops: list[np.ndarray], seed: int):
        """(inputs (N, T, 3, H, W), targets, mask) for crops of T (+1 for video) frames."""
        if self.stills:
            clean_ish = torch.stack([_to_tensor(c) for c in crops])  # (N, 1, 3, H, W)
            gen = torch.Generator().manual_seed(seed)
            z = self.noise.sample(clean_ish[:, 0], gen)[:, None]
            inputs = clean_ish + R2R_ALPHA * z
            targets = clean_ish - z / R2R_ALPHA
            return inputs, targets, torch.ones_like(targets[:, :, :1])
        inputs = torch.stack([_to_tensor(c[:-1]) for c in crops])
        tm = [n2n_targets(c) for c in crops]
        return inputs, torch.stack([t for t, _ in tm]), torch.stack([m for _, m in tm])

    def batch(self, step: int):
        rng = np.random.default_rng([self.cfg.seed, step])
        if self.teacher is not None:
            return self._reference_batch(rng)
        t = self.clip + (0 if self.stills else 1)
        eligible = [u for u in self.split.train if len(u) >= t]
        crops = []
        for _ in range(self.cfg.batch):
            unit = eligible[int(rng.integers(len(eligible)))]
            crops.append(_orient(self._crop(unit, rng, self.cfg.patch, t), int(rng.integers(8))))
        return self.pairs(crops, seed=int(rng.integers(2**31)))

    def _reference_batch(self, rng: np.random.Generator):
        """Noisy crops and the same crops of the teacher's references, in one orientation."""
        inputs, targets = [], []
        for _ in range(self.cfg.batch):
            noisy, ref = self.references["train"][int(rng.integers(len(self.references["train"])))]
            side = noisy.shape[0]
            p = min(self.cfg.patch, side) // self.multiple * self.multiple
            y, x = int(rng.integers(0, side - p + 1)), int(rng.integers(0, noisy.shape[1] - p + 1))
            code = int(rng.integers(8))
            inputs.append(_to_tensor(_orient(noisy[y : y + p, x : x + p], code)))
            targets.append(_to_tensor(_orient(ref[y : y + p, x : x + p], code), scale=1.0))
        inputs_t, targets_t = torch.stack(inputs)[:, None], torch.stack(targets)[:, None]
        return inputs_t, targets_t, torch.ones_like(targets_t[:, :, :1])

    def _validation_set(self):
        """Central crops of the held-back units (whole clips for video), fixed noise draws;
        with a teacher, its references for them."""
        if self.teacher is not None:
            return [
                (
                    _to_tensor(noisy)[None, None],
                    _to_tensor(ref, scale=1.0)[None, None],
                    torch.ones((1, 1, 1, *noisy.shape[:2])),
                )
                for noisy, ref in self.references["held"]
            ]
        t = self.clip + (0 if self.stills else 1)
        out = []
        for i, unit in enumerate(self.split.held):
            if len(unit) < t:
                continue
            h, w = unit.shape[1:3]
            s = min(self.cfg.val_size, h, w) // self.multiple * self.multiple
            y, x = (h - s) // 2, (w - s) // 2
            crops = [unit[k : k + t, y : y + s, x : x + s] for k in range(0, len(unit) - t + 1, t)]
            for j, crop in enumerate(crops):
                out.append(self.pairs([crop], seed=10_007 * i + j))
        if not out:
            raise UserError("no held-back frames long enough to validate on")
        return out

    def target_noise_power(self) -> float:
        """E‖target − clean‖² per value: what the loss adds to the true squared error.

        Known for stills (the measured noise model). For video it is the warped next frame's
        noise, which the warp's interpolation softens by an amount that depends on the
        noise's own correlation: it is left at 0, and the gain reported is the plain ratio of
        the held-back losses. With a teacher the target is its reference, whose error is
        unknown: 0 too."""
        if not self.stills or self.teacher is not None:
            return 0.0
        return float((1 + 1 / R2R_ALPHA**2) * self._mean_variance())

    def noise_variance(self, identity_loss: float) -> float:
        """The footage's noise power per value, all of it (correlated parts too): from the
        noise model for stills; for video from the noisy input scored against the next
        frame, which holds two frames' noise (an upper bound: misalignment adds to it)."""
        return self._mean_variance() if self.stills else identity_loss / 2

    def _mean_variance(self) -> float:
        return self.noise.variance_of([f for u in self.split.held for f in u])


def loss_of(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    return float(((out.float() - target).pow(2) * mask).sum() / (mask.sum() * 3).clamp_min(1))


@torch.no_grad()
def score(net: UNetDenoiser, objective: Objective, bf16: bool) -> list[float]:
    """The guard's loss on each held-back crop, for ``net`` (None: the noisy input)."""
    losses = []
    if net is not None:
        net.eval()
    for inputs, targets, mask in objective.val:
        if net is None:
            out = inputs
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = run_clip(net, inputs, frame_sigmas(inputs))
        losses.append(loss_of(out, targets, mask))
    return losses


def estimated_psnr(loss: float, noise_power: float) -> float | None:
    """PSNR implied by a guard loss once the target's own noise power is taken off."""
    mse = loss - noise_power
    return round(10 * math.log10(1 / mse), 2) if mse > 0 else None


def _lr_at(cfg: FinetuneConfig, frac: float, step: int) -> float:
    warm = min(1.0, (step + 1) / 20)
    return cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


@dataclass
class Outcome:
    accepted: bool
    report: dict
    net: UNetDenoiser


def finetune(
    net: UNetDenoiser,
    store: FrameStore,
    cfg: FinetuneConfig,
    checkpoint: Path | None = None,
    resume: dict | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float, int, float, float], None] | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """Fine-tune ``net`` (modified in place) on ``store`` until the time budget is spent.

    ``progress(fraction, step, loss, best_gain_db)`` runs after every step. Returns the best
    candidate by the guard's held-back loss and whether it beat the starting model.
    ``stop`` set ends the run with its checkpoint saved, by :class:`TrainingInterrupted`.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    stills = cfg.mode == "stills" or (cfg.mode == "auto" and looks_like_stills(store))
    split = split_frames(store, stills, cfg.holdout)
    torch.manual_seed(cfg.seed)
    objective = Objective(split, stills, cfg, net)
    budget = cfg.minutes * 60
    begin = time.monotonic() - (resume["elapsed"] if resume else 0.0)
    objective.prepare(
        net,
        resume.get("references") if resume else None,
        begin + TEACHER_SHARE * budget,
        log,
        stop,
    )
    # the learning-rate schedule spans the time left for training
    teach_s = resume.get("teach_s", 0.0) if resume else time.monotonic() - begin
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    start_losses = score(net, objective, cfg.bf16)
    start_loss = float(np.mean(start_losses))
    best_loss, best_state, best_losses = start_loss, copy.deepcopy(net.state_dict()), start_losses
    step, history = 0, []
    if resume:
        net.load_state_dict(resume["net"])
        opt.load_state_dict(resume["opt"])
        step, history = resume["step"], resume["history"]
        best_loss, best_state, best_losses = (
            resume["best_loss"],
            resume["best"],
            resume["best_losses"],
        )
    last_val = time.monotonic()
    loss_ema = None

    def save_checkpoint() -> None:
        if checkpoint is None:
            return
        blob = {
            **resumable_state(net, opt, step, begin, history, cfg),
            "best": best_state,
            "best_loss": best_loss,
            "best_losses": best_losses,
            "references": objective.references,
            "teach_s": teach_s,
        }
        save_whole(blob, checkpoint)

    def validate() -> None:
        nonlocal best_loss, best_state, best_losses
        losses = score(net, objective, cfg.bf16)
        loss = float(np.mean(losses))
        minutes = (time.monotonic() - begin) / 60
        history.append({"step": step, "minutes": round(minutes, 2), "heldback_loss": loss})
        if loss < best_loss:
            best_loss, best_state, best_losses = loss, copy.deepcopy(net.state_dict()), losses
        log(
            f"step {step} {minutes:.1f} min: held-back loss {loss * 1e4:.3f}e-4 "
            f"(start {start_loss * 1e4:.3f}e-4)"
        )
        net.train()

    net.train()
    try:
        while (now := time.monotonic()) - begin < budget and step < (cfg.max_steps or sys.maxsize):
            if stop is not None and stop.is_set():
                raise TrainingInterrupted(step, checkpoint)
            frac = (now - begin - teach_s) / max(budget - teach_s, 1e-9)
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, frac, step)
            inputs, targets, mask = objective.batch(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                out = run_clip(net, inputs, frame_sigmas(inputs))
            loss = ((out.float() - targets).pow(2) * mask).sum() / (mask.sum() * 3).clamp_min(1)
            optimizer_step(opt, net, loss)
            step += 1
            loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
            if progress:
                progress((time.monotonic() - begin) / budget, step, loss_ema, best_loss)
            if time.monotonic() - last_val > min(cfg.val_every_s, budget / 10):
                validate()
                save_checkpoint()
                last_val = time.monotonic()
        validate()
    finally:
        save_checkpoint()
    net.load_state_dict(best_state)
    net.eval()
    identity = float(np.mean(score(None, objective, cfg.bf16)))
    noise_power = objective.target_noise_power()
    worse = sum(b > s for b, s in zip(best_losses, start_losses, strict=True))
    taught = objective.teacher is not None
    r2r = stills and not taught
    report = {
        "mode": "stills" if stills else "video",
        "method": _method(stills, taught),
        "teacher": objective.teacher_name,
        "steps": step,
        "minutes": round((time.monotonic() - begin) / 60, 2),
        "frames_train": sum(len(u) for u in split.train),
        "frames_heldback": sum(len(u) for u in split.held),
        "frame_size": list(store.segments[0].shape[1:3][::-1]),
        "heldback_crops": len(start_losses),
        "noise_rms_8bit": round(255 * math.sqrt(objective.noise_variance(identity)), 2),
        "heldback_loss": {"noisy": identity, "start": start_loss, "finetuned": best_loss},
        "target_noise_power": noise_power,
        "estimated_psnr": {
            "noisy": estimated_psnr(identity, noise_power) if r2r else None,
            "start": estimated_psnr(start_loss, noise_power) if r2r else None,
            "finetuned": estimated_psnr(best_loss, noise_power) if r2r else None,
        },
        # with a teacher: PSNR of each against the teacher's references (not the truth)
        "reference_psnr": {
            "noisy": estimated_psnr(identity, 0.0) if taught else None,
            "start": estimated_psnr(start_loss, 0.0) if taught else None,
            "finetuned": estimated_psnr(best_loss, 0.0) if taught else None,
        },
        "teacher_check": objective.references.get("check"),
        "estimated_gain_db": _gain_db(start_loss, best_loss, noise_power),
        # R2R: from the estimated PSNRs; video: the ratio of the held-back losses; teacher:
        # the ratio of the distances to the references
        "estimated_gain_from": "psnr" if r2r else "reference ratio" if taught else "loss ratio",
        "crops_worse_than_start": worse,
        "history": history,
    }
    if objective.noise is not None:
        report["noise_model"] = objective.noise.to_dict()
    return Outcome(best_loss < start_loss, report, net)


def _method(stills: bool, taught: bool) -> str:
    if not stills:
        return "noise2noise-next-frame"
    return "teacher-distillation" if taught else "recorrupted-to-recorrupted"


def _gain_db(start: float, new: float, noise_power: float) -> float | None:
    a, b = start - noise_power, new - noise_power
    return round(10 * math.log10(a / b), 3) if a > 0 and b > 0 else None


def write_finetuned(
    path: Path, name: str, net: UNetDenoiser, start_blob: dict, metadata: dict
) -> None:
    """The fine-tuned weights with the start model's metadata kept under ``base``."""
    base = {k: start_blob["metadata"].get(k) for k in ("training_command", "git_commit")}
    metadata = {
        **metadata,
        "git_commit": git_commit(),
        "base": {"name": start_blob["name"], **base},
    }
    save_weights(path, name, net, metadata)


def check_config(cfg: FinetuneConfig) -> None:
    if cfg.minutes <= 0:
        raise UsageError("--minutes must be positive")
    if cfg.mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}")
    if not 0 < cfg.holdout < 1:
        raise UsageError("--holdout must be between 0 and 1")
    if cfg.patch % 16 or cfg.patch < 32:
        raise UsageError("--patch must be a multiple of 16, at least 32")
    if cfg.teacher not in TEACHERS:
        raise UsageError(f"--teacher must be one of {', '.join(TEACHERS)}")
