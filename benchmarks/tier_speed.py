"""Frames per second of each model tier through a backend's ``process()`` (host pre/post
processing included, no decode or encode), every tier in the same run, interleaved rounds.

    python benchmarks/tier_speed.py --models temporal,spatial,PATH/small.pt --backend openvino
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/tier_speed.py ... --label avx2-capped

``ONEDNN_MAX_CPU_ISA=AVX2`` caps oneDNN (and OpenVINO's CPU plugin) to AVX2 kernels: the
instruction set of most users' CPUs, on whatever CPU runs it (not its clocks or caches).
Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np

from streamdenoise.backends import create_backend
from streamdenoise.lab.speed import machine_record, write_report
from streamdenoise.models.macs import count_config_macs


def time_interleaved(cases: list[dict], frames: list[np.ndarray], seconds: float, rounds: int):
    """Append ms per ``process()`` call to each case's ``"ms"``: ``rounds`` rounds, each case
    ``seconds / rounds`` per round, the order rotated by one case per round (a machine's
    drift then falls on every case alike)."""
    for r in range(rounds):
        for case in cases[r % len(cases) :] + cases[: r % len(cases)]:
            end, i = time.perf_counter() + seconds / rounds, 0
            while time.perf_counter() < end:
                start = time.perf_counter()
                case["denoiser"].process(frames[i % len(frames)])
                case["ms"].append((time.perf_counter() - start) * 1000)
                i += 1


def measure(models: list[str], backend: str, precisions: list[str], size, seconds, rounds):
    w, h = size
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    cases = []
    for model in models:
        for precision in precisions:
            denoiser = create_backend(backend, model=model, precision=precision, device="cpu")
            for frame in frames:  # warm-up, and the recurrent state settles
                denoiser.process(frame)
            cases.append({"model": model, "precision": precision, "denoiser": denoiser, "ms": []})
    time_interleaved(cases, frames, seconds, rounds)
    rows = []
    for case in cases:
        config = case["denoiser"].config
        ms = statistics.median(case["ms"])
        rows.append(
            {
                "model": Path(case["model"]).stem,
                "precision": case["precision"],
                "size": f"{w}x{h}",
                "gmac_per_frame": round(count_config_macs(config, w, h) / 1e9, 2),
                "ms_per_frame_p50": round(ms, 2),
                "fps": round(1000 / ms, 1),
                "frames": len(case["ms"]),
            }
        )
        case["denoiser"].close()
    return rows


def to_markdown(doc: dict) -> str:
    cpu = doc["machine"]["cpu"]
    lines = [
        f"# Model tiers through `{doc['backend']}` `process()` ({doc['label']})",
        "",
        f"CPU: {cpu.get('model')} ({', '.join(cpu.get('flags', []))}), "
        f"{doc['machine'].get('physical_cores')} cores; ONEDNN_MAX_CPU_ISA="
        f"{doc['isa_cap'] or 'unset'}; load average at start {doc['machine'].get('load_avg_1m')}. "
        "Median ms per frame over interleaved rounds; host pre/post-processing included, "
        "no decode or encode.",
        "",
        "| model | precision | size | GMAC | ms/frame | fps |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['size']} | {r['gmac_per_frame']} | "
            f"{r['ms_per_frame_p50']:.1f} | {r['fps']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def arguments(description: str, name: str) -> argparse.ArgumentParser:
    """The options of a run of :func:`measure` whose results are named ``name``_LABEL."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--sizes", default="1280x720")
    parser.add_argument("--seconds", type=float, default=6.0, help="per case, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="native")
    parser.add_argument("--out", type=Path, default=Path(f"benchmarks/results/{name}"))
    return parser


def run(args: argparse.Namespace, models: list[str], markdown, extra: dict | None = None) -> None:
    """Measure ``models`` as ``args`` say and write the report (``markdown(doc)``; ``extra``
    goes into the doc)."""
    rows = []
    for text in args.sizes.split(","):
        size = tuple(int(v) for v in text.split("x"))
        rows += measure(
            models, args.backend, args.precisions.split(","), size, args.seconds, args.rounds
        )
    doc = {
        "backend": args.backend,
        "label": args.label,
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "machine": machine_record(),
        "rows": rows,
        **(extra or {}),
    }
    write_report(args.out.with_name(f"{args.out.name}_{args.label}"), doc, markdown(doc))


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], "tier_speed")
    parser.add_argument("--models", default="temporal,spatial")
    args = parser.parse_args()
    run(args, args.models.split(","), to_markdown)


if __name__ == "__main__":
    main()
