"""A noisy H.264 file replayed as a live camera, the way a user runs it, with ``--model auto``
and with each tier pinned: does the stream keep its frame rate, and which tier ran when?

Each case is the real command line (a subprocess)::

    streamdenoise run clip.mp4 --realtime --loop --policy latest --duration S -o out.mp4 \\
        [--model NAME] [--preset NAME] --stats-json stats.json -q

on a clip made from ``shared/datasets/media/clips/01_dog.mp4`` (resized, AWGN σ = 15, x264 at
an IP camera's bitrate: 4 Mbit/s at 720p, scaled by pixel count; ``--source crf18`` for the
~75 Mbit/s stress case), so the figures include decoding and x264 encoding on the same cores.
The calibration cache is a fresh folder per invocation of this script: the first ``auto`` case
per size includes its calibration before streaming starts (reported separately; it is not
streaming time). ``--models auto,auto`` runs a second start on the same cache: it judges the
rungs by the busy time per frame the first measured while they streamed.

Writes ``auto_live[_LABEL].json`` and ``.md`` (with the machine record) to ``--out``. To stand
in for an AVX2-only CPU on an AVX-512 one, cap the kernels (the cap is recorded)::

    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/auto_live.py --label zen5-avx2-capped
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite.clips import camera_bitrate, make_noisy_clip  # noqa: E402
from suite.report import machine_lines, table  # noqa: E402

from streamdenoise.auto.calibration import parse_seen_label  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="streaming seconds per case")
    parser.add_argument("--sizes", default="1280x720", help="comma list, e.g. 1280x720,1920x1080")
    parser.add_argument(
        "--models", default="auto,spatial,temporal", help="comma list: auto and/or tier names"
    )
    parser.add_argument("--output", choices=("mp4", "null"), default="mp4")
    parser.add_argument(
        "--source", choices=("camera", "crf18"), default="camera", help="how the clip is encoded"
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--preset", default=None, help="libx264 preset of the recording (else the default)"
    )
    parser.add_argument(
        "--fps", type=int, default=30, help="the clip's frame rate (a camera's: 30, 25, 15 …)"
    )
    parser.add_argument(
        "--still-camera", action="store_true", help="pass --still-camera to every run"
    )
    parser.add_argument("--label", default="", help="suffix of the result files' names")
    return parser.parse_args()


def run_case(clip: Path, model: str, args: argparse.Namespace, work: Path, env: dict) -> dict:
    seconds, output = args.seconds, args.output
    stats = work / f"{model}.json"
    target = "null" if output == "null" else str(work / f"{model}.mp4")  # -y: one per size
    command = [
        sys.executable, "-m", "streamdenoise", "run", str(clip), "--realtime", "--loop",
        "--policy", "latest", "--duration", str(seconds), "-o", target,
        "--stats-json", str(stats), "-q", "-y",
    ]  # fmt: skip
    if model != "auto":
        command += ["--model", model]
    if args.preset and output != "null":
        command += ["--preset", args.preset]
    if args.still_camera:
        command.append("--still-camera")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=work)
    wall = time.monotonic() - started
    if done.returncode != 0:
        return {"model": model, "error": done.stderr.strip().splitlines()[-1:]}
    report = json.loads(stats.read_text())
    source_fps = report["fps_in"]  # the paced file delivers its own rate
    e2e = report["latency_ms"]["e2e"]
    auto = report.get("auto") or {}
    seen = report["frames_in"]  # every captured frame, the dropped ones included
    return {
        "model": model,
        "ran": report["model"],
        "precision": report["backend"].get("precision"),
        "runtime": report["backend"].get("backend"),
        "fps_out": report["fps_out"],
        "share_of_source_fps": round(report["fps_out"] / source_fps, 3) if source_fps else None,
        "fps_in": source_fps,
        "drops_pct": round(100 * report["drops"] / max(seen, 1), 2),
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "denoise_p50_ms": report["latency_ms"]["denoise"]["p50"],
        "switches": report.get("switches", []),
        "spans": auto.get("spans"),
        "calibration": auto.get("calibration"),
        "busy_ms_learned": auto.get("busy_ms_learned"),
        "wall_s": round(wall, 1),
    }


def starts(cases: list[dict], index: int) -> str:
    """A case's model, and which start it was when the same model ran before (one cache)."""
    model = cases[index]["model"]
    earlier = sum(c["model"] == model for c in cases[:index])
    return f"{model} (start {earlier + 1})" if earlier else model


def learned(case: dict) -> str:
    """Rungs judged by an earlier run's busy time → what this run learned, ms per frame."""
    before = (case.get("calibration") or {}).get("busy_ms_seen_before") or {}
    now = case.get("busy_ms_learned") or {}
    said = [f"{label} {ms:.0f}" for label, ms in before.items()]
    for label, seen in now.items():
        tier, precision, _ = parse_seen_label(label)
        said.append(f"→ {tier}/{precision} {seen['busy_ms']:.0f}")
    return ", ".join(said) or "-"


def render(results: dict) -> str:
    lines = ["# Live replay with `--model auto`", ""]
    lines += [results["protocol"], "", *machine_lines(results["machine"])]
    lines += [f"- Kernel cap: ONEDNN_MAX_CPU_ISA={results.get('isa_cap') or 'unset'}", ""]
    for size, cases in results["sizes"].items():
        lines += [f"## {size}", ""]
        rows = [
            [
                starts(cases, index),
                str(c.get("ran", "-")),
                str(c.get("precision", "-")),
                f"{c['fps_out']:.1f}" if "fps_out" in c else "-",
                f"{100 * c['share_of_source_fps']:.0f} %" if c.get("share_of_source_fps") else "-",
                f"{c['drops_pct']:.1f} %" if "drops_pct" in c else "-",
                f"{c['e2e_p99_ms']:.0f}" if c.get("e2e_p99_ms") is not None else "-",
                str(len(c.get("switches") or [])),
                learned(c),
                "; ".join(c.get("error") or []),
            ]
            for index, c in enumerate(cases)
        ]
        header = ["model", "ran at the end", "precision", "fps out", "of source", "drops",
                  "e2e p99 ms", "switches", "busy ms: seen before → now", "error"]  # fmt: skip
        lines += [*table(header, rows), ""]
        for case in cases:
            for switch in case.get("switches") or []:
                lines.append(
                    f"- {case['model']}: at {switch['t_s']} s {switch['from']} → {switch['to']}:"
                    f" {switch['reason']}"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    source = args.data / "media" / "clips" / "01_dog.mp4"
    if not source.is_file():
        print(f"auto_live: missing {source} (--data)", file=sys.stderr)
        return 1
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    work = Path(tempfile.mkdtemp(prefix="auto_live_"))
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    results: dict = {
        "protocol": (
            f"`streamdenoise run clip.mp4 --realtime --loop --policy latest --duration "
            f"{args.seconds:g} -o {'out.mp4' if args.output == 'mp4' else 'null'}"
            + (f" --preset {args.preset}" if args.preset and args.output == "mp4" else "")
            + (" --still-camera" if args.still_camera else "")
            + "` per model "
            "(`--model NAME` for the pinned rows); clip: 01_dog.mp4 resized, AWGN σ=15, "
            + (
                "x264 at a camera's bitrate (4 Mbit/s at 720p, scaled by pixel count)"
                if args.source == "camera"
                else "x264 CRF 18 (~75 Mbit/s at 720p: a decoding stress case)"
            )
            + f", {args.fps} fps; a fresh calibration cache; "
            "drops = source-queue and output drops over frames captured."
        ),
        "machine": machine_record(),
        "command": " ".join(sys.argv),
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "sizes": {},
    }
    for text in args.sizes.split(","):
        width, height = (int(v) for v in text.lower().split("x"))
        bitrate = camera_bitrate((width, height)) if args.source == "camera" else None
        clip = make_noisy_clip(
            source, work / f"clip_{text}.mp4", (width, height), 300, bitrate, args.fps
        )
        results["sizes"][text] = [run_case(clip, model, args, work, env) for model in models]
        print(json.dumps(results["sizes"][text], indent=1)[:2000])
    args.out.mkdir(parents=True, exist_ok=True)
    name = "auto_live" + (f"_{args.label}" if args.label else "")
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(render(results) + "\n")
    print(f"wrote {args.out / name}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
