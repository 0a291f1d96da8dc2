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
import sys
from dataclasses import asdict, replace
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from streamdenoise import interrupts
from streamdenoise import settings as table
from streamdenoise.errors import UsageError, UserError
from streamdenoise.redact import redact

# A dry run's probe: this share of --minutes, at most this long.
PROBE_SHARE, PROBE_MAX_MINUTES = 0.2, 1.0


class FinetuneRefused(UserError):
    """The fine-tuned model did not beat its start on the held-back frames."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.FINETUNE)


def _config(given: dict):
    from streamdenoise.lab.camera_tuning import FinetuneConfig, check_config

    cfg = FinetuneConfig(
        model=given["finetune_model"],
        minutes=given["finetune_minutes"],
        mode=given["mode"],
        batch=given["finetune_batch"],
        patch=given["finetune_patch"],
        lr=given["finetune_lr"],
        seed=given["seed"],
        holdout=given["holdout"],
        teacher=given["teacher"],
        bf16=not given["fp32"],
    )
    check_config(cfg)
    return cfg


def _paths(given: dict) -> tuple[Path | None, Path | None, Path | None]:
    if given["dry_run"]:
        return None, None, None
    out = given["finetune_output"]
    if out is None:
        raise UsageError("-o OUT.pt is required (or --dry-run)")
    if out.suffix != ".pt":
        raise UsageError(f"output {out} must end in .pt")
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
    ckpt = given["checkpoint"] or out.with_suffix(".ckpt")
    return out, ckpt, ckpt.with_suffix(".frames.npz")


def run(args: argparse.Namespace) -> int:
    import torch

    from streamdenoise.lab.camera_tuning import (
        FrameStore,
        collect_frames,
        finetune,
        write_finetuned,
    )
    from streamdenoise.lab.trainer import TrainingInterrupted
    from streamdenoise.models import load_model

    given = table.from_args(args, table.FINETUNE)
    source = given["finetune_source"]
    if not source:
        raise UsageError("no SOURCE given: the camera, stream, file or folder to adapt to")
    cfg = _config(given)
    out, ckpt, frames_file = _paths(given)
    net, start_blob = load_model(cfg.model)
    command = args.command_line  # redacted by the CLI
    console = Console(stderr=True)
    resume = None
    if given["finetune_resume"]:
        if not (ckpt and ckpt.is_file() and frames_file.is_file()):
            raise UsageError(f"--resume: no checkpoint {ckpt} (and {frames_file}) to resume from")
        resume = torch.load(ckpt, map_location="cpu", weights_only=False)
        saved = resume["config"]
        if any(saved.get(k, cfg_v) != cfg_v for k, cfg_v in _fixed(cfg).items()):
            raise UsageError(
                "--resume: the checkpoint was made with another --model, --mode or --teacher"
            )
        store = FrameStore.load(frames_file)
        console.print(f"resuming at step {resume['step']} on {store.frames} saved frames")
    else:
        with console.status(f"reading {redact(source)}") as status:

            def counted(n: int) -> None:
                status.update(f"reading {redact(source)}: {n} frames")

            store = collect_frames(
                source,
                given["keep_frames"],
                given["memory"],
                cfg.frames + 1,
                given["collect_seconds"],
                cfg.seed,
                counted,
            )
        if frames_file:
            store.save(frames_file)
        console.print(f"kept {store.frames} of {store.frames_seen} frames")
    if given["dry_run"]:
        cfg = replace(cfg, minutes=min(PROBE_MAX_MINUTES, PROBE_SHARE * cfg.minutes))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    # Ctrl+C / SIGTERM end the training after its current step, the checkpoint saved
    with interrupts.stop_requests() as stop:
        try:
            with Progress(*columns, console=console, transient=False) as bar:
                task = bar.add_task("fine-tune", total=1.0)

                def progress(fraction: float, step: int, loss: float, best: float) -> None:
                    desc = (
                        f"step {step} loss {loss * 1e4:.2f}e-4 best held-back {best * 1e4:.2f}e-4"
                    )
                    bar.update(task, completed=min(fraction, 1.0), description=desc)

                outcome = finetune(net, store, cfg, ckpt, resume, bar.console.print, progress, stop)
        except TrainingInterrupted as stopped:
            saved = (
                f"; checkpoint saved in {stopped.checkpoint}: the same command with --resume "
                "continues"
                if stopped.checkpoint
                else " (a dry run keeps no checkpoint)"
            )
            print(f"streamdenoise: interrupted at step {stopped.step}{saved}", file=sys.stderr)
            return interrupts.EXIT_STATUS
    report = outcome.report
    summary = (
        f"{report['mode']} footage, {report['frames_train']} frames trained, "
        f"{report['frames_heldback']} held back; noise RMS ≈ {report['noise_rms_8bit']:.1f} "
        f"(8-bit; {_noise_text(store)}); {_verdict(report, cfg.model)}"
    )
    metadata = {
        "training_command": command,
        "finetune": {
            "source": redact(source),
            "start_model": redact(cfg.model),
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
    if given["report"]:
        given["report"].parent.mkdir(parents=True, exist_ok=True)
        given["report"].write_text(json.dumps(metadata, indent=1) + "\n")
    if given["dry_run"]:
        print(f"dry run ({report['minutes']:.1f} min probe): {summary}")
        return 0
    if not outcome.accepted:
        raise FinetuneRefused(
            f"not written: the fine-tuned model is no better than {redact(cfg.model)} on the "
            f"held-back frames (loss {report['heldback_loss']['finetuned']:.3g} vs "
            f"{report['heldback_loss']['start']:.3g}); checkpoint kept in {ckpt}"
        )
    write_finetuned(out, out.stem, outcome.net, start_blob, metadata)
    for path in (ckpt, frames_file):
        path.unlink(missing_ok=True)
    print(f"wrote {out}: {summary}")
    return 0


def _fixed(cfg) -> dict:
    """The settings a resumed run must share with the checkpoint's."""
    return {"model": cfg.model, "mode": cfg.mode, "teacher": cfg.teacher}


def _verdict(report: dict, model: str) -> str:
    """The guard's figures in a sentence."""
    gain = _signed(report["estimated_gain_db"])
    if report["estimated_gain_from"] == "loss ratio":
        return f"held-back loss ratio to {model}: {gain} dB"
    if report["estimated_gain_from"] == "reference ratio":
        ref = report["reference_psnr"]
        return (
            f"held-back PSNR against the {report['teacher']} references: noisy "
            f"{_db(ref['noisy'])}, {model} {_db(ref['start'])}, fine-tuned "
            f"{_db(ref['finetuned'])} ({gain} dB)"
        )
    est = report["estimated_psnr"]
    return (
        f"estimated PSNR noisy {_db(est['noisy'])}, {model} {_db(est['start'])}, "
        f"fine-tuned {_db(est['finetuned'])} ({gain} dB)"
    )


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
