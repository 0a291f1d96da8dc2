"""``streamdenoise finetune SOURCE --minutes M -o mycam.pt``: adapt a model to one camera.

Collects frames from SOURCE (anything ``run`` reads), fine-tunes a shipped model (or a
weights file) on them without clean targets, checks the result on frames it held back, and
writes a weights file that ``run --model mycam.pt`` accepts — only if it beats the model it
started from on those frames. ``--dry-run`` stops after measuring the footage's noise and
what a short probe gains.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from streamdenoise.errors import UsageError, UserError
from streamdenoise.models import MODEL_NAMES
from streamdenoise.redact import redact

# A dry run's probe: this share of --minutes, at most this long.
PROBE_SHARE, PROBE_MAX_MINUTES = 0.2, 1.0


class FinetuneRefused(UserError):
    """The fine-tuned model did not beat its start on the held-back frames."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "source",
        metavar="SOURCE",
        help="camera index, /dev/videoN, stream URL, video file or "
        "image folder: the footage to adapt to (noisy frames only)",
    )
    add("-o", "--output", metavar="OUT.pt", help="weights file to write")
    add(
        "--model",
        default="temporal",
        help=f"model to start from: {', '.join(MODEL_NAMES)} or a weights file [temporal]",
    )
    add("--minutes", type=float, default=10.0, help="fine-tuning time budget [10]")
    add(
        "--dry-run",
        action="store_true",
        help="only estimate the noise level and the likely gain; write nothing",
    )
    add(
        "--mode",
        choices=("auto", "video", "stills"),
        default="auto",
        help="video: next-frame Noise2Noise; stills: one shot per scene [auto: detected]",
    )
    add("--max-frames", type=int, default=240, help="frames kept from the source [240]")
    add(
        "--memory",
        type=float,
        default=1024,
        metavar="MB",
        help="RAM the kept frames may use [1024]",
    )
    add(
        "--collect-seconds",
        type=float,
        metavar="S",
        help="seconds to read a live source [60]; files are read to the end",
    )
    add("--holdout", type=float, default=0.2, help="share of the footage held back [0.2]")
    add("--lr", type=float, default=5e-4, help="learning rate [5e-4]")
    add("--batch", type=int, default=4, help="clips per step [4]")
    add("--patch", type=int, default=96, help="crop side in pixels, a multiple of 16 [96]")
    add("--seed", type=int, default=0)
    add("--checkpoint", metavar="FILE", help="checkpoint to save to [OUT.ckpt]")
    add(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its checkpoint (same SOURCE and -o)",
    )
    add("--report", type=Path, metavar="FILE.json", help="write the validation report here")
    add("--fp32", action="store_true", help="disable bf16 autocast")


def _config(args: argparse.Namespace):
    from streamdenoise.models.finetune import FinetuneConfig, check_config

    cfg = FinetuneConfig(
        model=args.model,
        minutes=args.minutes,
        mode=args.mode,
        batch=args.batch,
        patch=args.patch,
        lr=args.lr,
        seed=args.seed,
        holdout=args.holdout,
        bf16=not args.fp32,
    )
    check_config(cfg)
    if args.max_frames < 2:
        raise UsageError("--max-frames must be at least 2")
    if args.memory <= 0:
        raise UsageError("--memory must be positive")
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    if args.collect_seconds is not None and args.collect_seconds <= 0:
        raise UsageError("--collect-seconds must be positive")
    return cfg


def _paths(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    if args.dry_run:
        return None, None, None
    if not args.output:
        raise UsageError("-o OUT.pt is required (or --dry-run)")
    out = Path(args.output)
    if out.suffix != ".pt":
        raise UsageError(f"output {args.output} must end in .pt")
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {args.output}: folder {out.parent} does not exist")
    ckpt = Path(args.checkpoint) if args.checkpoint else out.with_suffix(".ckpt")
    return out, ckpt, ckpt.with_suffix(".frames.npz")


def run(args: argparse.Namespace) -> int:
    import torch

    from streamdenoise.models import load_model
    from streamdenoise.models.finetune import FrameStore, collect_frames, finetune, write_finetuned

    cfg = _config(args)
    out, ckpt, frames_file = _paths(args)
    net, start_blob = load_model(args.model)
    command = redact("streamdenoise " + shlex.join(sys.argv[1:]))
    console = Console(stderr=True)
    resume = None
    if args.resume:
        if not (ckpt and ckpt.is_file() and frames_file.is_file()):
            raise UsageError(f"--resume: no checkpoint {ckpt} (and {frames_file}) to resume from")
        resume = torch.load(ckpt, map_location="cpu", weights_only=False)
        saved = resume["config"]
        if saved["model"] != cfg.model or saved["mode"] != cfg.mode:
            raise UsageError("--resume: the checkpoint was made with another --model or --mode")
        store = FrameStore.load(frames_file)
        console.print(f"resuming at step {resume['step']} on {store.frames} saved frames")
    else:
        with console.status(f"reading {redact(args.source)}") as status:

            def counted(n: int) -> None:
                status.update(f"reading {redact(args.source)}: {n} frames")

            store = collect_frames(
                args.source,
                args.max_frames,
                args.memory,
                cfg.frames + 1,
                args.collect_seconds,
                cfg.seed,
                counted,
            )
        if frames_file:
            store.save(frames_file)
        console.print(f"kept {store.frames} of {store.frames_seen} frames")
    if args.dry_run:
        cfg = replace(cfg, minutes=min(PROBE_MAX_MINUTES, PROBE_SHARE * cfg.minutes))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("fine-tune", total=1.0)

        def progress(fraction: float, step: int, loss: float, best: float) -> None:
            desc = f"step {step} loss {loss * 1e4:.2f}e-4 best held-back {best * 1e4:.2f}e-4"
            bar.update(task, completed=min(fraction, 1.0), description=desc)

        outcome = finetune(net, store, cfg, ckpt, resume, log=bar.console.print, progress=progress)
    report = outcome.report
    est = report["estimated_psnr"]
    gain = _signed(report["estimated_gain_db"])
    summary = (
        f"{report['mode']} footage, {report['frames_train']} frames trained, "
        f"{report['frames_heldback']} held back; noise RMS ≈ {report['noise_rms_8bit']:.1f} "
        f"(8-bit; {_noise_text(store)}); "
        + (
            f"estimated gain over {args.model} on the held-back frames ≥ {gain} dB"
            if report["estimated_gain_is_lower_bound"]
            else f"estimated PSNR noisy {_db(est['noisy'])}, {args.model} {_db(est['start'])}, "
            f"fine-tuned {_db(est['finetuned'])} ({gain} dB)"
        )
    )
    metadata = {
        "training_command": command,
        "finetune": {
            "source": redact(args.source),
            "start_model": redact(args.model),
            "frames_seen": store.frames_seen,
            "config": asdict(cfg),
            "validation": report,
        },
        "final_validation": {
            "heldback_loss_start": report["heldback_loss"]["start"],
            "heldback_loss": report["heldback_loss"]["finetuned"],
            "estimated_gain_db": report["estimated_gain_db"],
        },
    }
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(metadata, indent=1) + "\n")
    if args.dry_run:
        print(f"dry run ({report['minutes']:.1f} min probe): {summary}")
        return 0
    if not outcome.accepted:
        raise FinetuneRefused(
            f"not written: the fine-tuned model is no better than {redact(args.model)} on the "
            f"held-back frames (loss {report['heldback_loss']['finetuned']:.3g} vs "
            f"{report['heldback_loss']['start']:.3g}); checkpoint kept in {ckpt}"
        )
    write_finetuned(out, out.stem, outcome.net, start_blob, metadata)
    for path in (ckpt, frames_file):
        path.unlink(missing_ok=True)
    print(f"wrote {out}: {summary}")
    return 0


def _noise_text(store) -> str:
    import numpy as np

    from streamdenoise.models.noise import estimate_noise_sigma

    frames = [f for seg in store.segments for f in seg][:32]
    sigma = np.median([estimate_noise_sigma(f) for f in frames], axis=0)
    return "white-noise σ " + "/".join(f"{s:.1f}" for s in sigma) + " R/G/B"


def _db(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} dB"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"
