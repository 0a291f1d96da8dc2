"""One command for every benchmark: speed, live latency and quality, with plots and a report.

    python benchmarks/run_all.py [--quick] [--out benchmarks/results/suite] [--data DIR]

Sections run in one process, each interleaving its contenders (see benchmarks/README.md):
end-to-end pipeline per size, live latency on a 30 fps camera, quality vs speed on the
validation clips. Writes ``results.json``, ``summary.md``, PNG plots, a labelled visual
comparison and a short side-by-side MP4 into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from suite import contenders as contenders_mod
from suite import e2e, live, plots, quality, report, visual_outputs
from suite.clips import make_noisy_clip

from streamdenoise.lab.speed import machine_record

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "suite"
DEFAULT_DATA = REPO.parent / "shared" / "datasets"
SOURCE_CLIP = Path("media/clips/01_dog.mp4")
SPEED_SIZE = (1280, 720)


@dataclass
class Plan:
    e2e: e2e.E2EPlan
    live: live.LivePlan
    quality: quality.QualityPlan


QUICK = Plan(
    e2e=e2e.E2EPlan(
        sizes=[(192, 108), (320, 180)], max_frames=12, min_frames=4, budget_s=1.0, rounds=2
    ),
    live=live.LivePlan(size=(320, 180), fps=30, seconds=2.0, rounds=1),
    quality=quality.QualityPlan(sigmas=[10, 25, 50], realistic=True, frames=3, width=128),
)
FULL = Plan(
    e2e=e2e.E2EPlan(
        sizes=[(640, 360), (1280, 720), (1920, 1080)],
        max_frames=120,
        min_frames=6,
        budget_s=8.0,
        rounds=2,
    ),
    live=live.LivePlan(size=(1280, 720), fps=30, seconds=10.0, rounds=2),
    quality=quality.QualityPlan(
        sigmas=[10, 20, 25, 30, 40, 50], realistic=True, frames=24, width=None
    ),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny sizes, few frames (< 3 minutes)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the shared datasets folder (default: ../shared/datasets)",
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def speed_of(e2e_results: list[dict], size: str) -> dict[str, dict]:
    """Per quality id (model name or baseline), the fastest contender's fps at ``size``."""
    best: dict[str, dict] = {}
    for row in e2e_results:
        if row["size"] != size or not row.get("fps"):
            continue
        key = row["model"] if row["kind"] == "model" else row["backend"]
        if key not in best or row["fps"] > best[key]["fps"]:
            best[key] = row
    return best


def quality_vs_speed(quality_results: list[dict], e2e_results: list[dict], size: str) -> list[dict]:
    speeds = speed_of(e2e_results, size)
    rows = []
    for row in quality_results:
        if row["noise"] != "awgn" or row["sigma"] != 25:
            continue
        fastest = speeds.get(row["id"], {})
        rows.append(
            {
                "contender": row["contender"],
                "kind": row["kind"],
                "psnr": row["psnr"],
                "ssim": row["ssim"],
                "flicker": row["flicker"],
                "fps": fastest.get("fps"),
                "fps_from": fastest.get("contender"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    command = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    if args.out.resolve() != DEFAULT_OUT:
        command += f" --out {shlex.quote(str(args.out))}"
    machine = machine_record()
    available, missing = contenders_mod.discover()
    log("contenders: " + ", ".join(c.label for c in available))
    with tempfile.TemporaryDirectory(prefix="sd-bench-") as tmp:
        work = Path(tmp)
        frames = plan.e2e.max_frames
        clips = {
            size: make_noisy_clip(
                args.data / SOURCE_CLIP, work / f"in_{size[0]}x{size[1]}.mp4", size, frames
            )
            for size in plan.e2e.sizes
        }
        e2e_section = e2e.run(available, clips, plan.e2e, work, log)
        live_clip = make_noisy_clip(
            args.data / SOURCE_CLIP, work / "live_in.mp4", plan.live.size, plan.live.fps * 4
        )
        live_section = live.run(available, live_clip, plan.live, work, log)
        videos = quality.dataset(args.data, plan.quality, work)
        quality_section = quality.run(available, videos, plan.quality, log)
        pictures = visual_outputs.render(
            available, videos, quality_section["results"], plan.quality, out, log
        )
    speed_size = e2e.size_name(SPEED_SIZE if SPEED_SIZE in plan.e2e.sizes else plan.e2e.sizes[-1])
    results = {
        "schema": "streamdenoise-benchmark-suite/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "quick": args.quick,
        "machine": machine,
        "contenders": [{**c.to_json(), "available": True, "reason": None} for c in available]
        + missing,
        "e2e": {**e2e_section, "protocol": e2e.protocol(plan.e2e)},
        "live": {**live_section, "protocol": live.protocol(plan.live)},
        "quality": quality_section,
        "quality_vs_speed": {
            "protocol": f"PSNR/SSIM at AWGN σ=25 (quality section) against the end-to-end fps "
            f"at {speed_size} (fastest backend of each model).",
            "size": speed_size,
            "results": quality_vs_speed(
                quality_section["results"], e2e_section["results"], speed_size
            ),
        },
    }
    images = [
        plots.quality_vs_speed(
            results["quality_vs_speed"]["results"], out / "quality_vs_speed.png", speed_size
        ).name,
        plots.latency_cdf(
            {r["contender"]: r["latency_samples_ms"] for r in live_section["results"]},
            out / "latency_cdf.png",
            f"End-to-end latency, live {live_section['size']} at "
            f"{live_section['fps']} fps, policy latest",
        ).name,
        plots.stage_bars(
            [r for r in e2e_section["results"] if r["size"] == speed_size],
            out / "stage_latency.png",
            f"Median latency per pipeline stage, {speed_size} file",
        ).name,
        *pictures["images"],
    ]
    results["outputs"] = {
        "images": images,
        "video": pictures.get("video"),
        "summary": "summary.md",
        "json": "results.json",
    }
    results["duration_s"] = round(time.monotonic() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    report.write(results, out / "summary.md")
    log(f"done in {results['duration_s']:.0f} s: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
