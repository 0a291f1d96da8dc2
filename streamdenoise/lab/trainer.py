"""Training loop: time-budgeted, resumable, bf16 autocast on the CPU or a CUDA GPU.

The learning-rate schedule follows the fraction of the time budget used (not a step count),
so a run given ``--minutes M`` anneals properly whatever the machine's speed. Batches and
noise are drawn from seeds derived from the step number, so a resumed run sees the same data
as an uninterrupted one would.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamdenoise.lab.data import VAL_MOTION_DIRS, ClipSampler, train_video_dirs, val_clips
from streamdenoise.models.motion import MotionCompensator
from streamdenoise.models.nets import NetConfig, UNetDenoiser, build_net, initial_state
from streamdenoise.models.noise import (
    estimate_noise_sigma_torch,
    isp_clips,
    monochrome_gain_torch,
    synthesize,
    to_monochrome,
)
from streamdenoise.models.weights import git_commit, save_weights, save_whole
from streamdenoise.settings import data_dir, default, train_batch


@dataclass
class TrainConfig:
    """A training run; defaults are ``streamdenoise train``'s (:mod:`streamdenoise.settings`)."""

    model: str = default("train_model")
    data: str = field(default_factory=lambda: str(data_dir()))
    minutes: float = default("minutes")
    #: Clips per step; None: :func:`~streamdenoise.settings.train_batch` of the model.
    batch: int | None = None
    frames: int = default("frames")
    patch: int = default("patch")
    lr: float = default("lr")
    seed: int = default("seed")
    val_every_s: float = 120.0
    val_size: int = 256
    val_frames: int = 12
    checkpoint: str = str(default("checkpoint_dir"))
    out: str | None = None
    resume: str | None = None
    init: str | None = None
    max_steps: int | None = None  # stop early (smoke tests); the time budget still applies
    bf16: bool = not default("fp32")
    #: "auto" (a CUDA GPU when torch sees one, else the CPU), "cpu", "cuda" or "cuda:N"
    device: str = "auto"
    video_share: float = default("video_share")  # clips cut from real videos (rest: images)
    #: "charbonnier" (robust, keeps edges) or "mse" (what PSNR measures: a last fine-tune)
    loss: str = default("loss")
    #: share of the AWGN clips with unclipped float noise (see models.noise.synthesize)
    unclipped_noise: float = default("unclipped_noise")
    #: share of the clips made grey with the same noise in every channel (IR cameras at night)
    monochrome: float = default("monochrome")
    #: share of the colour clips rendered by a simulated camera ISP (models.noise.isp_clips)
    isp_noise: float = default("isp_noise")
    net: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch is None:
            self.batch = train_batch(self.model)


# The CPU tier: ~2 GMAC per 720p frame (a 2-core AVX2 CPU's share of a 30 fps frame budget
# once decode and encode are paid), motion handled in the graph, thinner levels, no gate body.
SMALL_CONFIG = NetConfig(
    temporal=True,
    channels=(16, 24, 32, 64),
    enc_convs=(1, 1, 2, 2),
    dec_convs=(0, 0, 0, 0),
    stem_kernel=2,
    motion="graph",
    extra={"gate_body": False},
)


# Its per-frame counterpart at the same cost (one more conv at 1/4 resolution in place of the
# gate and the motion search): what the recurrence has to beat.
SMALL_SPATIAL_CONFIG = NetConfig(
    temporal=False,
    channels=(16, 24, 32, 64),
    enc_convs=(1, 2, 2, 2),
    dec_convs=(0, 0, 0, 0),
    stem_kernel=2,
)

# The shipped CPU tier: ``small-spatial`` with one more conv at 1/8 and at 1/16 resolution
# (+14 % MACs, run as int8 where int8 is faster). Deep levels are where low-frequency noise
# (colour blotches on smooth areas) is removed, and their small maps cost little time.
# Grown from trained ``small-spatial`` weights: the new convs start as the identity
# (see :func:`init_from`).
FAST_CONFIG = NetConfig(
    temporal=False,
    channels=(16, 24, 32, 64),
    enc_convs=(1, 2, 3, 3),
    dec_convs=(0, 0, 0, 0),
    stem_kernel=2,
)


# The rung below ``fast`` for large frames on small CPUs (1080p on two AVX2 cores): one conv
# at 1/4 resolution and two at 1/8 and 1/16, and an output conv that sees its own pixel only
# (the largest single layer of ``fast``). The 1/2-resolution level keeps 16 channels: its
# skip carries the 12 noisy values of each 2×2×3 patch to the output, and fewer channels
# than that starve it (8 channels stayed at 23.7 dB on the Vid4 crops).
TINY_CONFIG = NetConfig(
    temporal=False,
    channels=(16, 16, 32, 64),
    enc_convs=(1, 1, 2, 2),
    dec_convs=(0, 0, 0, 0),
    stem_kernel=2,
    extra={"tail_kernel": 1},
)


# The cheapest tier, for 720p30 on two AVX2 cores: it enters at 1/4 resolution (a
# stride-4 conv reads each 4×4×3 block), so nothing is computed at 1/2 resolution — on such a
# CPU the half-resolution level and the full-resolution output were a floor of tiny's time
# whatever its channels (benchmarks/results/layout_probe_zen3.md) — and it predicts the image
# from 24 features per block instead of adding predicted noise to the frame.
NANO_CONFIG = NetConfig(
    temporal=False,
    channels=(24, 32, 64),
    enc_convs=(1, 2, 2),
    dec_convs=(0, 0, 0),
    unshuffle=4,
    stem_kernel=4,
    extra={"tail_kernel": 1, "residual": False},
)

# ``nano`` with twice its channels (about 3 GMAC): the rung above it on CPUs with bf16
# matrix units (AMX), where its arithmetic is nearly free — 0.6x ``spatial``'s MACs and
# about 0.65x its time there — while it scores above ``spatial`` (docs/models.md). In fp32
# it costs 2.1x ``nano``'s time; ``auto``'s calibration decides where it fits.
WIDE_CONFIG = replace(NANO_CONFIG, channels=(48, 64, 128))

# ``wide`` made recurrent as ``temporal`` is (the gated running average of the noisy frames,
# lined up by dense flow), its gate at ``wide``'s 1/4 resolution: 3.4 GMAC against
# ``temporal``'s 5.6, grown from trained ``wide`` weights (step 0 is exactly ``wide``).
WIDE_TEMPORAL_CONFIG = replace(WIDE_CONFIG, temporal=True, motion="flow")


def default_net_config(model: str) -> NetConfig:
    """The architecture each shipped model name stands for: the same net; the recurrent
    ones differ in how the state is motion-compensated (see streamdenoise.models.motion)."""
    if model == "spatial":
        return NetConfig(temporal=False)
    if model == "small":
        return SMALL_CONFIG
    if model == "small-spatial":
        return SMALL_SPATIAL_CONFIG
    if model == "fast":
        return FAST_CONFIG
    if model == "tiny":
        return TINY_CONFIG
    if model == "nano":
        return NANO_CONFIG
    if model == "wide":
        return WIDE_CONFIG
    if model in ("wide-temporal", "wide-temporal-camera"):  # the same network
        return WIDE_TEMPORAL_CONFIG
    if model == "temporal-gpu":
        # motion searched inside the graph, on the device that runs the network
        return NetConfig(temporal=True, motion="graph", extra={"align": "fine"})
    return NetConfig(temporal=True, motion="shift" if model == "fixed" else "flow")


def run_clip(net: UNetDenoiser, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Denoise clips (N, T, 3, H, W) causally; spatial nets see frames independently.

    Recurrent nets get their state motion-compensated per clip, by the backends' own
    :class:`MotionCompensator`, from the clip's noisy frames."""
    outs = []
    prev = initial_state(noisy[:, 0], net.config.state_channels)
    compensators, motions = [], []
    if net.config.temporal and net.config.motion != "graph":
        for clip in noisy.detach().float().cpu().permute(0, 1, 3, 4, 2).numpy():
            compensators.append(MotionCompensator(net.config.motion))
            motions.append([compensators[-1].observe(frame) for frame in clip])
    for t in range(noisy.shape[1]):
        x = noisy[:, t].contiguous(memory_format=torch.channels_last)
        if compensators and t > 0:
            prev = torch.cat(
                [
                    c.apply(prev[i : i + 1], x[i : i + 1], m[t])
                    for i, (c, m) in enumerate(zip(compensators, motions, strict=True))
                ]
            )
        if net.config.temporal:
            y = net(x, sigma[:, t], prev.contiguous(memory_format=torch.channels_last))
        else:
            y = net(x, sigma[:, t])
        outs.append(y[:, :3])
        prev = y
    return torch.stack(outs, 1)


def optimizer_step(opt: torch.optim.Optimizer, net: UNetDenoiser, loss: torch.Tensor) -> None:
    """Backpropagate ``loss`` and step, the gradient clipped to norm 1 (one bad batch must
    not undo what the network has learned)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def with_isp_noise(
    clean: torch.Tensor, noisy: torch.Tensor, grey: torch.Tensor, share: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, noisy clips) with a ``share`` of the colour clips replaced by a simulated
    camera's rendering and noisy output (:func:`~streamdenoise.models.noise.isp_clips`); grey
    clips (a monochrome sensor has no Bayer mosaic) keep their noise."""
    rng = np.random.default_rng([seed, 7])
    chosen = torch.from_numpy(rng.random(clean.shape[0]) < share) & ~grey
    if not chosen.any():
        return clean, noisy
    clean, noisy = clean.clone(), noisy.clone()
    clean[chosen], noisy[chosen] = isp_clips(clean[chosen], rng)
    return clean, noisy


def frame_sigmas(noisy: torch.Tensor) -> torch.Tensor:
    """The noise level the network is given with each frame, as the backends give it: the
    blind estimate, raised for monochrome frames (``noise.MONOCHROME_NOISE_GAIN``)."""
    n, t = noisy.shape[:2]
    frames = noisy.flatten(0, 1).float()
    sigma = estimate_noise_sigma_torch(frames) * monochrome_gain_torch(frames)
    return sigma.view(n, t, 3, 1, 1)


def training_device(requested: str) -> torch.device:
    """Where a run trains: ``auto`` is the GPU torch sees (CUDA), else the CPU; a CUDA device
    that is not there is a usage error."""
    from streamdenoise.errors import UsageError
    from streamdenoise.runtime import default_device

    name = default_device("torch", None) if requested == "auto" else requested
    if name.startswith("cuda") and not torch.cuda.is_available():
        if requested == "auto":  # a GPU this torch build cannot use (a CPU-only wheel)
            return torch.device("cpu")
        raise UsageError(f"--device {requested}: torch sees no CUDA GPU here (--device cpu)")
    device = torch.device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UsageError(f"--device {requested}: torch sees {count} GPU(s) (cuda:0…)")
    return device


def mixed_precision(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` (the CPU's, or a GPU's where it has bf16), else none."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        bf16 = False  # fp16 would need loss scaling; such a GPU trains in fp32
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.clamp(0, 1) * 255).round() / 255 - b).pow(2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def validate(net: UNetDenoiser, clean: torch.Tensor, noisy: torch.Tensor, bf16: bool) -> float:
    """Mean PSNR over the validation clips (AWGN σ=25, 8-bit input)."""
    net.eval()
    with mixed_precision(noisy.device, bf16):
        out = run_clip(net, noisy, frame_sigmas(noisy)).float().to(clean.device)
    net.train()
    return sum(psnr(out[i], clean[i]) for i in range(len(clean))) / len(clean)


#: The U-Net's chains of same-width convs, where a conv added by growth starts as the identity.
BODY_PREFIXES = ("enc0.", "encs.", "decs.")


def init_from(net: UNetDenoiser, path: Path) -> None:
    """Start from trained weights; a spatial model can seed a temporal one (convs the
    temporal body lacks are dropped), a wider model a thinner one and a thinner one a wider
    one (see :func:`_fitted`).

    The temporal head sees [average, noisy, prev output] where the spatial one sees [noisy]:
    the weights for the new inputs start at zero, and after a reset the average is the frame
    itself, so the U-Net begins as the spatial model and only has to learn how to use the
    past, not how to denoise. A narrower source seeds a wider network the same way: it starts
    as the source, its new channels live. Layers the source lacks (the gate) keep their own
    initialisation, except convs added to the U-Net's body: those start as the identity
    (their input is already rectified, so conv + ReLU passes it unchanged), which grows a
    trained network into a deeper one that begins exactly where the source left off.
    """
    from streamdenoise.models.weights import read_weights_file

    state = read_weights_file(path)["state_dict"]
    own = net.state_dict()
    # layers the target has no counterpart of (a source with a deeper level) are left out
    state = {key: value for key, value in state.items() if key in own}
    for key, value in state.items():
        if own[key].shape != value.shape:
            layer = net.get_submodule(key.rpartition(".")[0])
            state[key] = _fitted(value, own[key], isinstance(layer, torch.nn.ConvTranspose2d))
    for key in own.keys() - state.keys():  # layers the source has no counterpart of
        state[key] = own[key]
        if key.startswith(BODY_PREFIXES) and key.endswith(".weight"):
            state[key] = torch.nn.init.dirac_(torch.empty_like(own[key]))
            state[key.removesuffix(".weight") + ".bias"] = torch.zeros_like(own[key][:, 0, 0, 0])
    net.load_state_dict(state)


def _fitted(value: torch.Tensor, own: torch.Tensor, transposed: bool) -> torch.Tensor:
    """The source's ``value`` in the target's tensor ``own`` (its fresh initialisation).

    What the target has less of is cut: channels from the end, a kernel to its centre (3×3 →
    1×1 keeps the centre tap). What it has more of: the source's outputs hear nothing new (new
    inputs and kernel taps start at zero, so the grown network starts exactly as the source),
    while new outputs keep their fresh initialisation — zero there too, and a new channel
    would neither act nor ever receive a gradient. ``transposed``: a ConvTranspose2d, whose
    weight is (in, out, ...) rather than (out, in, ...)."""
    fitted = own.detach().to(value.device, value.dtype).clone()
    source, target = [], []
    for dim, (have, want) in enumerate(zip(value.shape, own.shape, strict=True)):
        n = min(have, want)
        # channels from the start; kernels line up by their centres
        at_source, at_target = ((have - n) // 2, (want - n) // 2) if dim >= 2 else (0, 0)
        source.append(slice(at_source, at_source + n))
        target.append(slice(at_target, at_target + n))
    if value.ndim >= 2:
        rows = [slice(None)] * value.ndim
        rows[1 if transposed else 0] = target[1 if transposed else 0]
        fitted[tuple(rows)] = 0  # the source's outputs: only what the source gave them
    fitted[tuple(target)] = value[tuple(source)]
    return fitted


def _lr_at(cfg: TrainConfig, step: int, frac: float) -> float:
    warm = min(1.0, (step + 1) / 100)
    return cfg.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def resumable_state(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    step: int,
    started: float,
    history: list,
    cfg: Any,
) -> dict:
    """What a training checkpoint holds to resume where it stopped: weights, optimizer, step,
    the time spent since ``started`` (time.monotonic: the schedule follows the budget), the
    validation history and the run's config (a dataclass)."""
    return {
        "net": net.state_dict(),
        "opt": opt.state_dict(),
        "step": step,
        "elapsed": time.monotonic() - started,
        "history": history,
        "config": asdict(cfg),
    }


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl+C or SIGTERM, its checkpoint saved at ``step`` in ``checkpoint``
    (None: a run that keeps none, such as a fine-tuning dry run)."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(step, checkpoint)
        self.step, self.checkpoint = step, checkpoint


def train(
    cfg: TrainConfig,
    command: str = "",
    log: Callable[[str], None] | None = None,
    progress: Callable[[float, int, float, float], None] | None = None,
    stop: threading.Event | None = None,
) -> dict:
    """Train until the time budget is spent; returns the final metrics.

    ``progress(fraction_of_budget, step, loss_8bit, val_psnr)`` is called after every step.
    ``stop`` set (or a KeyboardInterrupt) ends the run with its checkpoint saved, by
    :class:`TrainingInterrupted`; ``resume`` continues from there.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    commit = git_commit()  # now: the tree may move on while a long run trains
    torch.manual_seed(cfg.seed)
    device = training_device(cfg.device)
    net_cfg = NetConfig.from_dict({**default_net_config(cfg.model).to_dict(), **cfg.net})
    net = build_net(net_cfg).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    step, elapsed, history = 0, 0.0, []
    if cfg.init and not cfg.resume:
        init_from(net, Path(cfg.init))
        log(f"initialised from {cfg.init}")
    if cfg.resume:
        ckpt = torch.load(cfg.resume, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["net"])
        opt.load_state_dict(ckpt["opt"])
        step, elapsed, history = ckpt["step"], ckpt["elapsed"], ckpt["history"]
        # the command chain that produced these weights, e.g. a run and its resumption
        command = " && ".join(c for c in (ckpt.get("command", ""), command) if c)
        log(f"resumed from {cfg.resume} at step {step} ({elapsed / 60:.1f} min)")
    data_dir = Path(cfg.data)
    sampler = ClipSampler.load(data_dir, cfg.video_share)
    val_clean = val_clips(data_dir, cfg.val_frames, cfg.val_size)
    val_noisy = synthesize(val_clean, seed=12345, kind="awgn", sigma=25 / 255).to(device)
    # fast motion, never trained on: reported beside Vid4 so a run is judged on both
    has_motion = all((data_dir / d).is_dir() for d in VAL_MOTION_DIRS)
    motion_clean = (
        val_clips(data_dir, cfg.val_frames, cfg.val_size, VAL_MOTION_DIRS) if has_motion else None
    )
    motion_noisy = (
        synthesize(motion_clean, seed=12346, kind="awgn", sigma=25 / 255).to(device)
        if has_motion
        else None
    )

    def validate_all() -> dict:
        result = {"val_psnr": validate(net, val_clean, val_noisy, cfg.bf16)}
        if has_motion:
            result["val_motion_psnr"] = validate(net, motion_clean, motion_noisy, cfg.bf16)
        return result

    frames = cfg.frames if net_cfg.temporal else 1
    batch = cfg.batch
    budget = cfg.minutes * 60
    ckpt_dir = Path(cfg.checkpoint)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last_val = time.monotonic()
    start = time.monotonic() - elapsed
    loss_ema, val_psnr = None, float("nan")

    ckpt_path = ckpt_dir / f"{cfg.model}-last.pt"

    def checkpoint() -> None:
        state = resumable_state(net, opt, step, start, history, cfg)
        save_whole({**state, "command": command}, ckpt_path)

    net.train()
    try:
        while (now := time.monotonic()) - start < budget and step < (cfg.max_steps or sys.maxsize):
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            for group in opt.param_groups:
                group["lr"] = _lr_at(cfg, step, (now - start) / budget)
            seed = cfg.seed * 1_000_003 + step
            clean = sampler.batch(seed, batch, frames, cfg.patch)
            # a generator of its own: with --monochrome 0 the clips and noise are as they were
            clean, grey = to_monochrome(clean, cfg.monochrome, torch.Generator().manual_seed(~seed))
            noisy = synthesize(clean, seed, p_unclipped=cfg.unclipped_noise, monochrome=grey)
            if cfg.isp_noise > 0:
                clean, noisy = with_isp_noise(clean, noisy, grey, cfg.isp_noise, seed)
            # clips and their noise are made on the CPU, the network runs on ``device``
            clean, noisy = clean.to(device), noisy.to(device)
            with mixed_precision(device, cfg.bf16):
                out = run_clip(net, noisy, frame_sigmas(noisy))
            loss = training_loss(out.float(), clean, cfg.loss)
            optimizer_step(opt, net, loss)
            step += 1
            # shown as an error in 8-bit units: the mean absolute one, or the RMS one for mse
            error = math.sqrt(loss.item()) if cfg.loss == "mse" else loss.item()
            loss_ema = error if loss_ema is None else 0.98 * loss_ema + 0.02 * error
            if progress:
                progress((time.monotonic() - start) / budget, step, loss_ema * 255, val_psnr)
            if time.monotonic() - last_val > cfg.val_every_s:
                scores = validate_all()
                val_psnr = scores["val_psnr"]
                minutes = (time.monotonic() - start) / 60
                history.append({"step": step, "minutes": round(minutes, 2), **scores})
                loss_8bit = loss_ema * 255
                log(f"step {step} {minutes:.1f} min loss {loss_8bit:.2f}/255 {_scores(scores)}")
                checkpoint()
                last_val = time.monotonic()
    except KeyboardInterrupt:
        checkpoint()
        raise TrainingInterrupted(step, ckpt_path) from None
    scores = validate_all()
    minutes = (time.monotonic() - start) / 60
    history.append({"step": step, "minutes": round(minutes, 2), **scores})
    log(f"done: step {step} {minutes:.1f} min {_scores(scores)}")
    checkpoint()
    metrics = {"val_psnr_vid4_crops_sigma25": round(scores["val_psnr"], 3)}
    if "val_motion_psnr" in scores:
        metrics["val_psnr_motion_crops_sigma25"] = round(scores["val_motion_psnr"], 3)
    metrics |= {"steps": step, "minutes": round(minutes, 2)}
    if cfg.out:
        save_weights(
            Path(cfg.out),
            cfg.model,
            net,
            {
                "training_command": command,
                "train_config": asdict(cfg),
                "data": _data_note(data_dir),
                "git_commit": commit,
                "device": str(device),
                "final_validation": metrics,
                "history": history,
                **({"initialised_from": init_note(Path(cfg.init))} if cfg.init else {}),
            },
        )
    return metrics


def training_loss(out: torch.Tensor, clean: torch.Tensor, kind: str) -> torch.Tensor:
    """Charbonnier (a smooth L1: robust to the odd hard pixel, keeps edges; what the models
    are trained with) or the mean squared error, which is what PSNR scores: a short last
    fine-tune with it moves a model to the mean of what it is unsure of."""
    if kind == "mse":
        return (out - clean).pow(2).mean()
    return ((out - clean).pow(2) + 1e-6).sqrt().mean()  # Charbonnier


def init_note(path: Path) -> dict:
    """Where a run that started from other weights started: that file's digest, and how it
    was made (its own command, data and validation), so the chain stays reproducible."""
    from streamdenoise.models.tiers import file_digest
    from streamdenoise.models.weights import read_weights_file

    metadata = read_weights_file(path).get("metadata", {})
    kept = ("training_command", "data", "git_commit", "final_validation", "initialised_from")
    return {"file": path.name, "sha256_12": file_digest(path)} | {
        key: metadata[key] for key in kept if key in metadata
    }


def _scores(scores: dict) -> str:
    text = f"val PSNR {scores['val_psnr']:.2f} dB"
    if "val_motion_psnr" in scores:
        text += f", fast motion {scores['val_motion_psnr']:.2f} dB"
    return text


def _data_note(data_dir: Path) -> str:
    videos = ",".join(d.rsplit("/", 1)[1] for d in train_video_dirs(data_dir))
    return (
        f"clean: train/images/{{cbsd432,wiki}}, train/videos/{{{videos}}} (DAVIS frames shrunk "
        "×0.75) from ../shared/datasets; noise synthesised on the fly "
        "(AWGN σ∈[0,55]/255 or Poisson-Gaussian+chroma+JPEG/H.264); "
        "validation: centre 256² crops of val/videos/vid4-{walk,city} and "
        "val/videos-motion/*, AWGN σ=25"
    )
