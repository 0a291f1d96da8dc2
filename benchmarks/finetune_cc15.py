"""Fine-tuning on real camera noise: the CC15 pairs (Nam et al. 2016), per model.

Each model is fine-tuned by the real ``streamdenoise finetune`` command on a folder holding
only the 15 *noisy* photos (the clean references never reach it), then ``eval`` scores the
pairs as they are: the noisy input, the shipped model, its fine-tuned copy, and the classical
filters at the setting of their tuning grid that scores best on these very pairs (an upper
bound for them). The guard's self-supervised estimate is set against the truth: on the
photos it held back, the PSNR it estimated for the start and the fine-tuned model, and the
gain, next to the PSNR the clean references give.

Writes ``benchmarks/results/finetune/cc15.{json,md}`` and the before/after picture
``docs/img/finetune-cc15.png`` (noisy | shipped | fine-tuned | clean, a held-back photo).

    .venv/bin/python benchmarks/finetune_cc15.py [--models spatial] [--minutes 8]
        [--classical opencv-nlm,nlmeans]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from streamdenoise.backends import create_backend
from streamdenoise.commands.eval import merge_reports
from streamdenoise.lab.camera_tuning import heldback_indices
from streamdenoise.lab.quality import BackendSpec, evaluate, load_pairs
from streamdenoise.lab.speed import machine_record

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "finetune"
PICTURE = REPO / "docs" / "img" / "finetune-cc15.png"
CC15 = REPO.parent / "shared" / "datasets" / "val" / "images-real" / "cc15"
HOLDOUT = 0.2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="spatial")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--classical", default="opencv-nlm,nlmeans")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="cc15", help="results file name (without suffix)")
    parser.add_argument(
        "--merge",
        type=Path,
        help="an earlier results JSON whose eval rows are kept unless recomputed (e.g. the "
        "classical filters' grid search, which is slow)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = load_pairs(CC15)
    names = [p.name for p in pairs]
    held = heldback_indices(len(pairs), HOLDOUT)
    runs, specs = [], [BackendSpec.parse("identity")]
    specs += [BackendSpec.parse(c) for c in args.classical.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        noisy_only = Path(tmp) / "cc15-noisy"
        noisy_only.mkdir()
        for name in names:  # the source sees the noisy photos and nothing else
            (noisy_only / f"{name}.png").symlink_to(CC15 / f"{name}_noisy.png")
        for model in args.models.split(","):
            weights = Path(tmp) / f"cc15-{model}.pt"
            report = Path(tmp) / f"cc15-{model}-report.json"
            command = [
                sys.executable, "-m", "streamdenoise", "finetune", str(noisy_only),
                "--model", model, "--minutes", str(args.minutes), "--holdout", str(HOLDOUT),
                "--lr", str(args.lr),
                "-o", str(weights), "--report", str(report),
            ]  # fmt: skip
            begin = time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            run = {
                "model": model,
                "minutes_spent": round((time.monotonic() - begin) / 60, 2),
                "exit": done.returncode,
                "said": (done.stdout if done.returncode == 0 else done.stderr).splitlines()[-1:],
                "guard": json.loads(report.read_text())["finetune"]["validation"],
            }
            run["guard"].pop("history", None)
            runs.append(run)
            specs.append(BackendSpec.parse(model))
            if done.returncode == 0:
                specs.append(BackendSpec(f"{model} fine-tuned", "torch", str(weights)))
                if len(runs) == 1:
                    picture(pairs[held[0]], model, str(weights))
            print(json.dumps(run), flush=True)
        report = evaluate([CC15], [], specs, log=lambda s: print(s, flush=True))
    report["datasets"] = [str(CC15)]
    report["commands"] = [" ".join(sys.argv)]
    if args.merge:
        merge_reports(report, json.loads(args.merge.read_text())["eval"])
    rows = {r["backend"]: r for r in report["results"]}
    for run in runs:
        start, tuned = rows[run["model"]], rows.get(f"{run['model']} fine-tuned")
        if tuned is None:
            continue

        def held_psnr(row: dict) -> float:
            return float(np.mean([row["per_sequence"][i]["psnr"] for i in held]))

        est = run["guard"]["estimated_psnr"]
        run["proxy_check"] = {
            "heldback": [names[i] for i in held],
            "true_psnr_start": round(held_psnr(start), 3),
            "true_psnr_finetuned": round(held_psnr(tuned), 3),
            "true_gain_db": round(held_psnr(tuned) - held_psnr(start), 3),
            "estimated_psnr_start": est["start"],
            "estimated_psnr_finetuned": est["finetuned"],
            "estimated_gain_db": run["guard"]["estimated_gain_db"],
            "true_psnr_noisy": round(held_psnr(rows["identity"]), 3),
            "estimated_psnr_noisy": est["noisy"],
        }
    result = {
        "machine": machine_record(),
        "dataset": "val/images-real/cc15 (15 real noisy/clean pairs)",
        "minutes_budget": args.minutes,
        "lr": args.lr,
        "runs": runs,
        "eval": report,
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    return 0


def picture(pair, model: str, weights: str, size: int = 256) -> None:
    """Central crops of one photo side by side: noisy | shipped | fine-tuned | clean."""
    noisy, clean = pair.noisy[0], pair.frames[0]
    outs = []
    for name in (model, weights):
        backend = create_backend("torch", model=name)
        outs.append(backend.process(noisy))
        backend.close()
    h, w = clean.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    tiles = [a[y : y + size, x : x + size] for a in (noisy, *outs, clean)]
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(PICTURE), np.concatenate(tiles, 1)[:, :, ::-1])


def cpu_text(machine: dict) -> str:
    cpu = machine.get("cpu") or {}
    flags = "/".join(cpu.get("flags", []))
    load = machine.get("load_avg_1m")
    return f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores ({flags}), load {load}"


def markdown(result: dict) -> str:
    lines = [
        f"CC15 real camera noise, scored as is. CPU: {cpu_text(result['machine'])}; "
        f"fine-tuning budget {result['minutes_budget']:g} min per model, on the noisy photos "
        "only. Classical filters at their best grid setting on these pairs (upper bound).",
        "",
        "| backend | PSNR | SSIM | photos worse than noisy | setting |",
        "|---|---|---|---|---|",
    ]
    for r in result["eval"]["results"]:
        setting = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
        lines.append(
            f"| {r['backend']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
            f"{r.get('worse_than_noisy', '–')} | {setting} |"
        )
    lines += [
        "",
        "The guard's estimate against the truth, on the held-back photos:",
        "",
        "| model | minutes | noisy est / true | start est / true | fine-tuned est / true "
        "| gain est / true |",
        "|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        c = run.get("proxy_check")
        if not c:
            lines.append(
                f"| {run['model']} | {run['minutes_spent']:.1f} | refused: {run['said']} |"
            )
            continue
        lines.append(
            f"| {run['model']} | {run['minutes_spent']:.1f} | "
            f"{c['estimated_psnr_noisy']} / {c['true_psnr_noisy']:.2f} | "
            f"{c['estimated_psnr_start']} / {c['true_psnr_start']:.2f} | "
            f"{c['estimated_psnr_finetuned']} / {c['true_psnr_finetuned']:.2f} | "
            f"{c['estimated_gain_db']:+.2f} / {c['true_gain_db']:+.2f} dB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
