"""Fine-tuning on real camera noise: the CC15 pairs (Nam et al. 2016), per model.

Each model is fine-tuned by the real ``streamdenoise finetune`` command on a folder holding
only the 15 *noisy* photos (the clean references never reach it), once per ``--teacher``, then
``eval`` scores the pairs as they are: the noisy input, the shipped model, its fine-tuned
copies, and the classical filters at the setting of their tuning grid that scores best on
these very pairs (an upper bound for them). The guard's figures are set against the truth:
on the photos it held back, what it measured for the start and the fine-tuned model (PSNR
against the teacher's references, or the estimated PSNR of recorrupted pairs), and the gain,
next to the PSNR the clean references give; for a teacher, also its own true PSNR on the
held-back crops the guard used.

Writes ``benchmarks/results/finetune/cc15.{json,md}`` and the before/after picture
``docs/img/finetune-cc15.png`` (noisy | shipped | fine-tuned | clean, a held-back photo).

    .venv/bin/python benchmarks/finetune_cc15.py [--models spatial] [--minutes 8]
        [--teachers bm3d,nlm] [--classical opencv-nlm,nlmeans] [--merge earlier.json]
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
    parser.add_argument("--teachers", default="auto", help="--teacher of each run, comma-separated")
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
            specs.append(BackendSpec.parse(model))
            for teacher in args.teachers.split(","):
                label = f"{model} fine-tuned ({teacher})"
                weights = Path(tmp) / f"cc15-{model}-{teacher}.pt"
                run = finetune(noisy_only, model, teacher, weights, args)
                run["label"] = label
                runs.append(run)
                if run["exit"] == 0:
                    specs.append(BackendSpec(label, "torch", str(weights)))
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
        start, tuned = rows[run["model"]], rows.get(run["label"])
        if tuned is None:
            continue

        def held_psnr(row: dict) -> float:
            return float(np.mean([row["per_sequence"][i]["psnr"] for i in held]))

        guard = run["guard"]
        taught = guard["method"] == "teacher-distillation"
        est = guard["reference_psnr"] if taught else guard["estimated_psnr"]
        figure = f"PSNR against the {guard['teacher']} references" if taught else "estimated PSNR"
        run["proxy_check"] = {
            "heldback": [names[i] for i in held],
            "guard_figure": figure,
            "true_psnr_start": round(held_psnr(start), 3),
            "true_psnr_finetuned": round(held_psnr(tuned), 3),
            "true_gain_db": round(held_psnr(tuned) - held_psnr(start), 3),
            "estimated_psnr_start": est["start"],
            "estimated_psnr_finetuned": est["finetuned"],
            "estimated_gain_db": guard["estimated_gain_db"],
            "true_psnr_noisy": round(held_psnr(rows["identity"]), 3),
            "estimated_psnr_noisy": est["noisy"],
        }
        if taught:
            run["proxy_check"]["teacher_true_psnr_heldback_crops"] = teacher_truth(
                pairs, held, guard
            )
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


def finetune(noisy_only: Path, model: str, teacher: str, weights: Path, args) -> dict:
    """One real ``streamdenoise finetune`` run; its exit, last line and guard report."""
    report = weights.with_suffix(".json")
    command = [
        sys.executable, "-m", "streamdenoise", "finetune", str(noisy_only),
        "--model", model, "--minutes", str(args.minutes), "--holdout", str(HOLDOUT),
        "--lr", str(args.lr), "--teacher", teacher,
        "-o", str(weights), "--report", str(report),
    ]  # fmt: skip
    begin = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    guard = json.loads(report.read_text())["finetune"]["validation"]
    guard.pop("history", None)
    return {
        "model": model,
        "teacher": teacher,
        "minutes_spent": round((time.monotonic() - begin) / 60, 2),
        "exit": done.returncode,
        "said": (done.stdout if done.returncode == 0 else done.stderr).splitlines()[-1:],
        "guard": guard,
    }


def teacher_truth(pairs, held: list[int], guard: dict) -> float:
    """The teacher's own PSNR against the clean references on the held-back central crops
    the guard scored (the noise model as the fine-tune measured it)."""
    from streamdenoise.lab.camera_noise import NoiseModel
    from streamdenoise.lab.camera_teacher import make_teacher
    from streamdenoise.lab.image_metrics import psnr

    _, teacher = make_teacher(guard["teacher"], NoiseModel.from_dict(guard["noise_model"]))
    scores = []
    for i in held:
        noisy, clean = pairs[i].noisy[0], pairs[i].frames[0]
        h, w = clean.shape[:2]
        s = min(256, h, w) // 16 * 16
        y, x = (h - s) // 2, (w - s) // 2
        ref = teacher(noisy[y : y + s, x : x + s])
        ref8 = (np.clip(ref, 0, 1) * 255 + 0.5).astype(np.uint8)
        scores.append(psnr(ref8, clean[y : y + s, x : x + s]))
    return round(float(np.mean(scores)), 3)


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
        "The guard's figures against the truth, on the held-back photos (the guard's figure: "
        "PSNR against the teacher's references with a teacher, estimated PSNR of recorrupted "
        "pairs without; true: against the clean references):",
        "",
        "| run | minutes | guard's figure | noisy guard / true | start guard / true "
        "| fine-tuned guard / true | gain guard / true | teacher's own true PSNR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        c = run.get("proxy_check")
        if not c:
            lines.append(
                f"| {run['label']} | {run['minutes_spent']:.1f} | refused: {run['said']} |"
            )
            continue
        teacher = c.get("teacher_true_psnr_heldback_crops")
        lines.append(
            f"| {run['label']} | {run['minutes_spent']:.1f} | {c['guard_figure']} | "
            f"{c['estimated_psnr_noisy']} / {c['true_psnr_noisy']:.2f} | "
            f"{c['estimated_psnr_start']} / {c['true_psnr_start']:.2f} | "
            f"{c['estimated_psnr_finetuned']} / {c['true_psnr_finetuned']:.2f} | "
            f"{c['estimated_gain_db']:+.2f} / {c['true_gain_db']:+.2f} dB | "
            + (f"{teacher:.2f} (central crops) |" if teacher else "– |")
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
