"""Is a layout worth a tier? Train candidates side by side on the same budget, one core each.

    python benchmarks/layout_train_probe.py --layouts nano=,wide48=48,64,128 --minutes 40 \
        --label xeon-amx
    python benchmarks/layout_train_probe.py --report nano.pt wide48.pt --label xeon-amx

Each layout is ``nano``'s network (quarter-resolution stem, image-predicting, its low-pass
initialisation) with the channels per level given (empty: ``nano`` itself), trained with
``nano``'s recipe (patch 192, batch 6, lr 1e-3, 60 % video clips, half the AWGN clips
unclipped, bf16 where the CPU has it) for the same wall-clock budget, each in a process of
its own pinned to its own core with one thread — so the candidates share the machine
equally and a wider network pays for its arithmetic with fewer steps. Validation (σ = 25, the
Vid4 crops and the fast-motion crops, as ``streamdenoise train`` reports it) every two
minutes. Writes ``layout_train_probe_LABEL.{json,md,png}`` under ``--out`` with the machine
record; the weights stay in ``--work`` (they are not a shipped tier).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite.report import machine_lines, plot_both_sets, save_results, table  # noqa: E402

from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.models.macs import count_config_macs  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layouts",
        default="nano=,wide48=48,64,128",
        help="NAME=CHANNELS (comma-separated per level; empty: nano's), comma-separated",
    )
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--work", type=Path, default=Path("layout-train-probe"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--label", default="")
    parser.add_argument("--report", nargs="+", type=Path, help="report these weights files only")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "CHANNELS"), help=argparse.SUPPRESS)
    return parser.parse_args()


def layouts(text: str) -> dict[str, list[int] | None]:
    """``nano=,wide48=48,64,128`` → {"nano": None, "wide48": [48, 64, 128]}."""
    found: dict[str, list[int] | None] = {}
    name = None
    for part in text.split(","):
        if "=" in part:
            name, first = part.split("=", 1)
            found[name] = [int(first)] if first else None
        elif name is not None and part:
            found[name] = [*(found[name] or []), int(part)]
    return found


def train_one(args: argparse.Namespace, name: str, channels: list[int] | None) -> None:
    """In the worker process: one thread, nano's recipe, the given channels."""
    import torch

    torch.set_num_threads(1)
    from streamdenoise.lab.trainer import TrainConfig, train

    config = TrainConfig(
        model="nano",
        data=str(args.data),
        batch=6,
        patch=192,
        lr=1e-3,
        minutes=args.minutes,
        video_share=0.6,
        unclipped_noise=0.5,
        seed=args.seed,
        out=str(args.work / f"{name}.pt"),
        checkpoint=str(args.work / f"checkpoints-{name}"),
        net={"channels": channels} if channels else {},
    )
    train(config, command=" ".join(sys.argv))


def launch(args: argparse.Namespace) -> list[Path]:
    """One worker per layout, each pinned to its own core."""
    chosen = layouts(args.layouts)
    cores = sorted(os.sched_getaffinity(0))
    if len(chosen) > len(cores):
        raise SystemExit(f"{len(chosen)} layouts need as many cores; this process has {len(cores)}")
    args.work.mkdir(parents=True, exist_ok=True)
    workers = []
    for core, (name, channels) in zip(cores, chosen.items(), strict=False):
        argv = [sys.executable, __file__, "--worker", name, json.dumps(channels)]
        argv += ["--minutes", str(args.minutes), "--seed", str(args.seed)]
        argv += ["--data", str(args.data), "--work", str(args.work)]
        log = open(args.work / f"{name}.log", "w")  # noqa: SIM115 - closed after the wait
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        os.sched_setaffinity(process.pid, {core})
        workers.append((process, log))
    for process, log in workers:
        process.wait()
        log.close()
        if process.returncode:
            raise SystemExit(f"a training worker failed: see {log.name}")
    return [args.work / f"{name}.pt" for name in chosen]


def summary(paths: list[Path]) -> list[dict]:
    from streamdenoise.models.nets import NetConfig
    from streamdenoise.models.weights import read_weights_file

    rows = []
    for path in paths:
        meta = read_weights_file(path)
        config = NetConfig.from_dict(meta["config"])
        history = meta["metadata"]["history"]
        rows.append(
            {
                "layout": path.stem,
                "channels": list(config.channels),
                "gmac_720p": round(count_config_macs(config) / 1e9, 2),
                "steps": history[-1]["step"],
                "history": history,
                "train_config": meta["metadata"]["train_config"],
            }
        )
    return rows


def render(doc: dict) -> str:
    rows = doc["layouts"]
    first = rows[0]["train_config"]
    lines = [
        "# Layouts trained side by side on one budget",
        "",
        *machine_lines(doc["machine"]),
        "",
        f"Each layout: `nano`'s recipe (patch {first['patch']}, batch {first['batch']}, lr "
        f"{first['lr']}, {first['video_share']:.0%} video clips, {first['unclipped_noise']:.0%} "
        f"of AWGN clips unclipped, bf16 {first['bf16']}), seed {first['seed']}, "
        f"{first['minutes']:g} minutes, one core and one thread each, at the same time. "
        "Validation PSNR at σ = 25 on the Vid4 crops / the fast-motion crops.",
        "",
    ]
    minutes = sorted({h["minutes"] for h in rows[0]["history"]})
    marks = [m for m in minutes if round(m) % 10 == 0 or m == minutes[-1]]
    header = ["layout", "channels", "GMAC / 720p", "steps"]
    header += [f"{m:.0f} min" for m in marks]
    body = []
    for row in rows:
        by_minute = {h["minutes"]: h for h in row["history"]}
        cells = [
            row["layout"],
            ", ".join(map(str, row["channels"])),
            f"{row['gmac_720p']:.2f}",
            str(row["steps"]),
        ]
        for mark in marks:
            near = min(by_minute, key=lambda m, mark=mark: abs(m - mark))
            h = by_minute[near]
            cells.append(f"{h['val_psnr']:.2f} / {h.get('val_motion_psnr', float('nan')):.2f}")
        body.append(cells)
    lines += table(header, body)
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    curves = [
        (
            f"{row['layout']} ({row['gmac_720p']:.2f} GMAC)",
            [h["minutes"] for h in row["history"]],
            [h["val_psnr"] for h in row["history"]],
            [h.get("val_motion_psnr") for h in row["history"]],
        )
        for row in doc["layouts"]
    ]
    plot_both_sets(path, curves, "σ = 25", "minutes of training")


def main() -> int:
    args = parse_args()
    if args.worker:
        name, channels = args.worker
        train_one(args, name, json.loads(channels))
        return 0
    paths = args.report or launch(args)
    doc = {"machine": machine_record(), "command": " ".join(sys.argv), "layouts": summary(paths)}
    save_results(args.out, "layout_train_probe", args.label, doc, render, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
