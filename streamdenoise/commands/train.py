"""``streamdenoise train``: train the temporal or spatial model on the shared datasets."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from streamdenoise import interrupts
from streamdenoise import settings as table
from streamdenoise.errors import UsageError

#: Settings that go into TrainConfig under their own names.
CONFIG_SETTINGS = (
    "minutes",
    "frames",
    "patch",
    "lr",
    "seed",
    "video_share",
    "loss",
    "unclipped_noise",
    "monochrome",
    "isp_noise",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.TRAIN)


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.trainer import TrainConfig, TrainingInterrupted, train, training_device

    given = table.from_args(args, table.TRAIN)
    if given["patch"] % 16:
        raise UsageError("--patch must be a multiple of 16")
    model = given["train_model"]
    training_device(given["device"])  # a GPU that is not there is said before anything starts
    cfg = TrainConfig(
        model=model,
        data=str(given["data_root"] or table.data_dir()),
        batch=given["train_batch"],
        checkpoint=str(given["checkpoint_dir"]),
        out=str(given["out"] or f"{model}.pt"),
        resume=str(given["resume"]) if given["resume"] else None,
        init=str(given["init"]) if given["init"] else None,
        bf16=not given["fp32"],
        device=given["device"],
        **table.pick(given, *CONFIG_SETTINGS),
    )
    command = args.command_line
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    # Ctrl+C / SIGTERM end the run after its current step, the checkpoint saved
    with interrupts.stop_requests() as stop:
        try:
            with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
                task = bar.add_task(f"train {model}", total=1.0)

                def progress(fraction: float, step: int, loss: float, val_psnr: float) -> None:
                    desc = f"{model} step {step} loss {loss:.2f}/255 val {val_psnr:.2f} dB"
                    bar.update(task, completed=min(fraction, 1.0), description=desc)

                metrics = train(
                    cfg, command=command, log=bar.console.print, progress=progress, stop=stop
                )
        except TrainingInterrupted as stopped:
            print(
                f"streamdenoise: interrupted at step {stopped.step}; checkpoint saved: "
                f"--resume {stopped.checkpoint} continues",
                file=sys.stderr,
            )
            return interrupts.EXIT_STATUS
    print(f"wrote {cfg.out}: {metrics}")
    return 0
