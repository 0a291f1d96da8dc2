"""Where a flow-aligned recurrent tier's time goes through OpenVINO ``process()``, and what
moving its state inside the graph saves: the host path (OpenCV remap of every state
channel, float frames in and out, the export's concatenated state) against the graph path
(GridSample on the host's flow, uint8 frames in and out, the state as two outputs), the
same frames through both in interleaved rounds.

    python benchmarks/recurrent_host_path.py --label xeon-amx

Frames: consecutive frames of a fast-motion validation sequence at each size, AWGN σ = 15
(the dense flow's cost depends on the content). Also timed alone on those frames: the host's
DIS flow (what the graph path still leaves on the host) and the host warp. The outputs of
the two paths are compared frame by frame (mean and largest difference in 8-bit steps; the
host warp rounds sampling positions to 1/32 pixel, GridSample does not). Writes JSON +
markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

from streamdenoise.backends import create_backend
from streamdenoise.backends.openvino_backend import OpenVINOGraph
from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models import motion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_settings import median_ms, noisy_frames
from tier_speed import time_interleaved

ROOT = Path(__file__).resolve().parents[1]


def host_path(denoiser) -> None:
    """``denoiser`` (OpenVINO, a flow-aligned tier) as it ran before its graph moved the
    state: host warp, float frames, one concatenated state output."""
    denoiser.warps_state = False
    denoiser.graph = OpenVINOGraph(denoiser.onnx_path, denoiser.precision, denoiser.threads)


def compare(a, b, frames: list[np.ndarray]) -> tuple[float, int]:
    """Mean and largest |a − b| in 8-bit steps over ``frames`` from a fresh state."""
    a.reset()
    b.reset()
    diffs = [np.abs(a.process(f).astype(int) - b.process(f)) for f in frames]
    return round(float(np.mean(diffs)), 3), int(max(d.max() for d in diffs))


def measure(model: str, precision: str, frames, seconds: float, rounds: int) -> dict:
    paths = {}
    for name in ("host", "graph"):
        denoiser = create_backend("openvino", model=model, precision=precision, device="cpu")
        if name == "host":
            host_path(denoiser)
        for frame in frames[:4]:  # compile, warm up
            denoiser.process(frame)
        paths[name] = {"denoiser": denoiser, "ms": []}
    time_interleaved(list(paths.values()), frames, seconds, rounds)
    mean_diff, max_diff = compare(paths["host"]["denoiser"], paths["graph"]["denoiser"], frames)
    ms = {name: round(statistics.median(p["ms"]), 2) for name, p in paths.items()}
    for p in paths.values():
        p["denoiser"].close()
    return {
        "model": model,
        "precision": precision,
        "host_ms": ms["host"],
        "graph_ms": ms["graph"],
        "speedup": round(ms["host"] / ms["graph"], 2),
        "mean_diff_8bit": mean_diff,
        "max_diff_8bit": max_diff,
    }


def host_work(frames: list[np.ndarray], state_channels: int, repeats: int) -> dict:
    """The host's share: DIS flow between two frames, and the remap of a state along it."""
    estimator = motion.FlowEstimator()
    greys = [motion.grey_frame(f) for f in frames[:2]]
    flow = estimator.flow(*greys)
    h, w = frames[0].shape[:2]
    state = np.random.default_rng(0).random((1, state_channels, h, w), dtype=np.float32)
    return {
        "flow_ms": median_ms(lambda: estimator.flow(*greys), repeats),
        "host_warp_ms": median_ms(lambda: motion.warp_state(state, flow), repeats),
    }


def to_markdown(doc: dict) -> str:
    lines = [
        f"# Recurrent tiers through OpenVINO: state moved on the host or in the graph "
        f"({doc['label']})",
        "",
        f"CPU: {cpu_description(doc['machine'])}. Median ms per `process()` call, "
        f"{doc['rounds']} interleaved rounds, {doc['frames']} consecutive frames of "
        f"`{doc['sequence']}` (AWGN σ = 15) cycled; no decode or encode. Host path: OpenCV "
        "remap of each state channel, float frames, the export's concatenated state. Graph "
        "path: GridSample on the host's flow, uint8 frames, the state as two outputs. "
        "Difference: the two paths' uint8 frames from the same start (8-bit steps).",
        "",
        "| size | model | precision | host path ms | graph path ms | × faster | "
        "mean diff | max diff |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for size, part in doc["sizes"].items():
        for r in part["rows"]:
            lines.append(
                f"| {size} | {r['model']} | {r['precision']} | {r['host_ms']:.1f} | "
                f"{r['graph_ms']:.1f} | {r['speedup']:.2f} | {r['mean_diff_8bit']} | "
                f"{r['max_diff_8bit']} |"
            )
    lines += ["", "Host work alone on the same frames (one call, median ms):", ""]
    lines += ["| size | DIS flow (both paths) | remap of the 6-channel state (host path) |"]
    lines += ["|---|---:|---:|"]
    for size, part in doc["sizes"].items():
        lines.append(f"| {size} | {part['flow_ms']} | {part['host_warp_ms']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wide-temporal,temporal")
    parser.add_argument("--precisions", default="bf16,int8,fp32")
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=8.0, help="per path, over all rounds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--label", default="native")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/recurrent_host_path")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if "bf16" in precisions and not OpenVINOGraph.has_bf16():
        precisions.remove("bf16")
    doc = {
        "label": args.label,
        "machine": machine_record(),
        "rounds": args.rounds,
        "frames": args.frames,
        "sequence": "val/videos-motion/davis-tennis",
        "sizes": {},
    }
    for text in args.sizes.split(","):
        size = tuple(int(v) for v in text.split("x"))
        frames = noisy_frames(args.data, size, args.frames)
        rows = [
            measure(model, precision, frames, args.seconds, args.rounds)
            for model in args.models.split(",")
            for precision in precisions
        ]
        doc["sizes"][text] = {**host_work(frames, 6, 20), "rows": rows}
    write_report(Path(f"{args.out}_{args.label}"), doc, to_markdown(doc))


if __name__ == "__main__":
    main()
