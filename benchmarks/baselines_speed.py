"""Speed of every classical baseline next to the models at one frame size, in one run.

Each contender denoises the same real camera frames (``media/clips/01_dog.mp4``, AWGN σ=25)
through ``Denoiser.process``, one frame at a time as the pipeline calls it; the first frame
is a warm-up (filter graphs, worker processes, compiled models) and not timed, except for
CBM3D, which builds nothing and takes minutes per frame: it gets one timed frame.
Writes ``baselines_speed.json`` and ``.md`` with the machine record; quote ratios within
one run, since the absolute figures move with the load of the machine.

    python benchmarks/baselines_speed.py [--size 1280x720] [--out benchmarks/results/quality]
        [--only vbm3d,bm3d --label NAME]

``--only`` times some backends (``spatial`` through OpenVINO, the reference of the ratios,
always runs); ``--label`` writes ``baselines_speed_NAME.*`` beside the full run's files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from streamdenoise.backends import create_backend, unavailable_reason
from streamdenoise.lab.speed import machine_record

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CLIP = DATASETS / "media" / "clips" / "01_dog.mp4"
# (label, backend, keyword arguments, timed frames)
CONTENDERS: list[tuple[str, str, dict, int]] = [
    ("spatial (OpenVINO, default precision)", "openvino", {"model": "spatial"}, 8),
    ("temporal (OpenVINO, default precision)", "openvino", {"model": "temporal"}, 8),
    ("wide-temporal (OpenVINO, default precision)", "openvino", {"model": "wide-temporal"}, 8),
    ("spatial (torch)", "torch", {"model": "spatial"}, 4),
    ("hqdn3d", "hqdn3d", {"sigma": 25.0}, 8),
    ("atadenoise", "atadenoise", {"sigma": 25.0}, 8),
    ("nlmeans", "nlmeans", {"sigma": 25.0}, 2),
    ("bm3d (FFmpeg)", "bm3d", {"sigma": 25.0}, 3),
    ("vbm3d (causal)", "vbm3d", {"sigma": 25.0}, 3),
    ("cbm3d", "cbm3d", {"sigma": 25.0}, 1),
]


def real_frames(width: int, height: int, count: int, sigma: float = 25.0) -> list[np.ndarray]:
    """The clip's first frames at ``width``×``height`` with seeded AWGN, quantized."""
    import av
    import cv2

    frames = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height))
            frames.append(rgb)
            if len(frames) == count:
                break
    rng = np.random.default_rng(0)
    return [
        np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).round().astype(np.uint8) for f in frames
    ]


def measure(backend: str, kwargs: dict, frames: list[np.ndarray], timed: int) -> dict:
    denoiser = create_backend(backend, **kwargs)
    try:
        if backend != "cbm3d":
            denoiser.process(frames[0])  # warm-up
        start = time.perf_counter()
        for frame in frames[1 : timed + 1]:
            denoiser.process(frame)
        seconds = (time.perf_counter() - start) / timed
        return {"s_per_frame": round(seconds, 4), "fps": round(1 / seconds, 3), "frames": timed}
    finally:
        denoiser.close()


def markdown(report: dict) -> str:
    cpu = report["machine"]["cpu"]
    lines = [
        f"Model-only speed at {report['size']}, one frame at a time, on {cpu['model']} "
        f"({cpu['cores']} logical cores; {', '.join(cpu['flags'])}); load average "
        f"{report['machine']['load_avg_1m']} at the start: taken under load, quote ratios.",
        "",
        "| contender | s/frame | fps | × slower than spatial | frames timed |",
        "|---|---|---|---|---|",
    ]
    base = next(
        (r["s_per_frame"] for r in report["results"] if r["label"].startswith("spatial (OpenVINO")),
        None,
    )
    for row in report["results"]:
        if "error" in row:
            lines.append(f"| {row['label']} | – | – | {row['error']} | – |")
            continue
        ratio = f"{row['s_per_frame'] / base:.1f}" if base else "–"
        lines.append(
            f"| {row['label']} | {row['s_per_frame']:.3f} | {row['fps']:.3g} | {ratio} "
            f"| {row['frames']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quality")
    parser.add_argument("--only", help="comma list of backends to time (default: all)")
    parser.add_argument("--label", default="", help="file name suffix")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    contenders = CONTENDERS
    if args.only:
        wanted = set(args.only.split(","))
        if unknown := wanted - {backend for _, backend, *_ in CONTENDERS}:
            parser.error(f"--only: no contender {', '.join(sorted(unknown))}")
        contenders = [CONTENDERS[0]] + [c for c in CONTENDERS[1:] if c[1] in wanted]
    frames = real_frames(width, height, 1 + max(t for *_, t in contenders))
    report = {
        "size": args.size,
        "command": " ".join(sys.argv),
        "vapoursynth_python": os.environ.get("STREAMDENOISE_VAPOURSYNTH_PYTHON"),
        "machine": machine_record(),
        "results": [],
    }
    for label, backend, kwargs, timed in contenders:
        row = {"label": label, "backend": backend, **kwargs}
        if reason := unavailable_reason(backend):
            row["error"] = reason
        else:
            row.update(measure(backend, kwargs, frames, timed))
        report["results"].append(row)
        print(label, row.get("s_per_frame", row.get("error")), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / ("baselines_speed" + (f"_{args.label}" if args.label else ""))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
