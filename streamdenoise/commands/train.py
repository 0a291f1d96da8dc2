"""``streamdenoise train``: train the temporal or spatial model on the shared datasets."""

from __future__ import annotations

import argparse
import shlex
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from streamdenoise.errors import UsageError
from streamdenoise.models import MODEL_NAMES, weights_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="../shared/datasets", help="shared datasets folder")
    parser.add_argument("--model", choices=MODEL_NAMES, default="temporal")
    parser.add_argument("--minutes", type=float, default=35.0, help="wall-clock training budget")
    parser.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint file")
    parser.add_argument("--out", help="weights file to write (default: the packaged one)")
    parser.add_argument("--checkpoint-dir", default="checkpoints")
    parser.add_argument(
        "--init",
        metavar="WEIGHTS",
        help="start from a weights file (a spatial model can seed a temporal one)",
    )
    parser.add_argument("--batch", type=int, help="clips per step [spatial 16, else 6]")
    parser.add_argument("--frames", type=int, default=5, help="frames per clip (truncated BPTT)")
    parser.add_argument("--patch", type=int, default=80)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--video-share",
        type=float,
        default=0.5,
        help="share of the training clips cut from real videos; the rest come from images",
    )
    parser.add_argument("--fp32", action="store_true", help="disable bf16 autocast")


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.train import TrainConfig, train

    if args.minutes <= 0:
        raise UsageError("--minutes must be positive")
    if not 0 <= args.video_share <= 1:
        raise UsageError("--video-share must be between 0 and 1")
    if args.patch % 16:
        raise UsageError("--patch must be a multiple of 16")
    cfg = TrainConfig(
        model=args.model,
        data=args.data,
        minutes=args.minutes,
        batch=args.batch or (16 if args.model == "spatial" else 6),
        frames=args.frames,
        patch=args.patch,
        lr=args.lr,
        seed=args.seed,
        checkpoint=args.checkpoint_dir,
        out=args.out or str(weights_path(args.model)),
        resume=args.resume,
        init=args.init,
        bf16=not args.fp32,
        video_share=args.video_share,
    )
    command = "streamdenoise " + shlex.join(sys.argv[1:])
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"train {args.model}", total=1.0)

        def progress(fraction: float, step: int, loss: float, val_psnr: float) -> None:
            desc = f"{args.model} step {step} loss {loss:.2f}/255 val {val_psnr:.2f} dB"
            bar.update(task, completed=min(fraction, 1.0), description=desc)

        metrics = train(cfg, command=command, log=bar.console.print, progress=progress)
    print(f"wrote {cfg.out}: {metrics}")
    return 0
