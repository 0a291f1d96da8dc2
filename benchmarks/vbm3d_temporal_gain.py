"""What the past is worth to V-BM3D, beside what it is worth to the recurrent network.

    STREAMDENOISE_VAPOURSYNTH_PYTHON=~/.vs/bin/python \\
        python benchmarks/vbm3d_temporal_gain.py --label L

The same implementation (bm3dcpu, block step 3, 16×16 search, basic + final stage) run
causally with a temporal radius of 0 (each frame alone: BM3D), 1 (the shipped ``vbm3d``) and
2 previous frames, each radius at the noise factor that scores best on the training clips
(``eval --tune-classical``'s clips and grid), on both validation sets with ``eval``'s
protocol; ``wide`` and ``wide-temporal`` (torch) beside them. The radius-1 minus radius-0
gap is what block matching into the past adds on each set: the classical counterpart of the
recurrent tier's lead over its per-frame network. Per sequence, both gains are plotted
against the sequence's motion (mean dense-flow length between its clean frames).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite.report import machine_lines, save_results, table  # noqa: E402

from streamdenoise.backends import unavailable_reason  # noqa: E402
from streamdenoise.lab.quality import BackendSpec, evaluate, load_sequences  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.lab.tune_classical import (  # noqa: E402
    best_on_training,
    forced_params,
    grid,
    tuning_sequences,
)
from streamdenoise.models.motion import FlowEstimator, grey_frame  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets"
SETS = (("val/videos", 20), ("val/videos-motion", 10))
RADII = (0, 1, 2)
NETWORKS = ("torch:wide", "torch:wide-temporal")
#: (legend, per-frame contender, the one with the past, marker) for the per-sequence plot
PLOTTED = (
    ("V-BM3D radius 1 − radius 0", "V-BM3D radius 0", "V-BM3D radius 1", "o-"),
    ("wide-temporal − wide", *NETWORKS, "s-"),
)


def tuned(sigma: float, radius: int, seqs) -> dict:
    """The radius's best setting on the training clips, from the tuner's factors (its grid
    holds each factor once per radius: the radius-1 entries, given this radius)."""
    factors = [p for p in grid("vbm3d", sigma) if p["radius"] == 1]
    candidates = [{**p, "radius": radius} for p in factors]
    return best_on_training("vbm3d", sigma, candidates, seqs)[1]


def measure(args: argparse.Namespace) -> list[dict]:
    seqs = tuning_sequences(DATA / "train" / "videos")
    rows = []
    for sigma in args.sigmas:
        for radius in RADII:
            params = tuned(sigma, radius, seqs)
            print(f"σ={sigma:g} radius {radius}: {params}", flush=True)
            with forced_params("vbm3d", params):
                found = scored(f"V-BM3D radius {radius}", [BackendSpec.parse("vbm3d")], sigma)
            rows += [{**r, "factor": params["sigma"] / sigma} for r in found]
        rows += scored(None, [BackendSpec.parse(n) for n in NETWORKS], sigma)
    return rows


def scored(name: str | None, specs: list[BackendSpec], sigma: float) -> list[dict]:
    rows = []
    for data, frames in SETS:
        report = evaluate([DATA / data], [sigma], specs, max_frames=frames, log=print)
        rows += [
            {
                "contender": name or r["backend"],
                "set": data,
                "sigma": sigma,
                "psnr": r["psnr"],
                "per_sequence": {q["name"]: q["psnr"] for q in r["per_sequence"]},
            }
            for r in report["results"]
        ]
    return rows


def sequence_motion() -> dict[str, float]:
    """Mean length (px) of the dense flow between consecutive clean frames, per sequence."""
    motion = {}
    for data, frames in SETS:
        for seq in load_sequences(DATA / data, frames):
            flow, greys = FlowEstimator(), [grey_frame(f) for f in seq.frames]
            pairs = itertools.pairwise(greys)
            lengths = [np.linalg.norm(flow.flow(a, b), axis=-1).mean() for a, b in pairs]
            motion[seq.name] = round(float(np.mean(lengths)), 2)
    return motion


def per_sequence(rows: list[dict]) -> dict[tuple[str, float], dict[str, float]]:
    """(contender, σ) → {sequence: PSNR} over both sets."""
    per: dict[tuple[str, float], dict[str, float]] = {}
    for r in rows:
        per.setdefault((r["contender"], r["sigma"]), {}).update(r["per_sequence"])
    return per


def render(doc: dict) -> str:
    rows, sigmas = doc["rows"], doc["sigmas"]
    motion, per = doc["motion_px"], per_sequence(rows)
    score = {(r["contender"], r["set"], r["sigma"]): r["psnr"] for r in rows}
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    levels = " / ".join(f"{s:g}" for s in sigmas)

    def line(set_name: str, minus, plus) -> str:
        return " / ".join(
            f"{score[plus, set_name, s] - score[minus, set_name, s]:+.2f}" for s in sigmas
        )

    gains = [
        ("V-BM3D radius 1 − radius 0 (one past frame)", "V-BM3D radius 0", "V-BM3D radius 1"),
        ("V-BM3D radius 2 − radius 1 (a second one)", "V-BM3D radius 1", "V-BM3D radius 2"),
        ("`wide-temporal` − `wide` (the recurrence)", *NETWORKS),
        ("V-BM3D radius 0 − `wide` (per frame)", NETWORKS[0], "V-BM3D radius 0"),
    ]
    factor = {(r["contender"], r["sigma"]): r["factor"] for r in rows if "factor" in r}
    factors = [
        [c, " / ".join(f"{factor[c, s]:.1f}" for s in sigmas)]
        for c in contenders
        if (c, sigmas[0]) in factor
    ]
    lines = [
        "# What the past is worth to V-BM3D and to the recurrent network",
        "",
        *machine_lines(doc["machine"]),
        "",
        f"PSNR dB at AWGN σ = {levels} (`eval`'s protocol: 8-bit noise, seed 0, causal, every "
        "frame of the first 20 (`val/videos`) / 10 (`val/videos-motion`), mean over "
        "sequences). V-BM3D: bm3dcpu, block step 3, 16×16 search, both stages, the window "
        "ending at the current frame.",
        "",
        *table(
            ["contender", *[s for s, _ in SETS]],
            [
                [c, *[" / ".join(f"{score[c, s, x]:.2f}" for x in sigmas) for s, _ in SETS]]
                for c in contenders
            ],
        ),
        "",
        f"Gains, dB at σ = {levels}:",
        "",
        *table(
            ["", *[s for s, _ in SETS]],
            [[label, *[line(s, a, b) for s, _ in SETS]] for label, a, b in gains],
        ),
        "",
        f"Per sequence, by motion (mean length of the dense flow between consecutive clean "
        f"frames), gains dB at σ = {levels}:",
        "",
        *table(
            ["sequence", "motion px / frame", *[label for label, *_ in PLOTTED]],
            [
                [n, f"{motion[n]:.1f}"]
                + [
                    " / ".join(f"{per[b, x][n] - per[a, x][n]:+.2f}" for x in sigmas)
                    for _, a, b, _ in PLOTTED
                ]
                for n in sorted(motion, key=motion.get)
            ],
        ),
        "",
        "Plugin sigma ÷ σ picked on the training clips, per level:",
        "",
        *table(["contender", "factor"], factors),
    ]
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    """Each gain per sequence against the sequence's motion, one panel per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    motion, per = doc["motion_px"], per_sequence(doc["rows"])
    names = sorted(motion, key=motion.get)
    fig, axes = plt.subplots(
        1, len(doc["sigmas"]), figsize=(4.2 * len(doc["sigmas"]), 4), sharey=True
    )
    for axis, sigma in zip(np.atleast_1d(axes), doc["sigmas"], strict=True):
        for label, minus, plus, marker in PLOTTED:
            gains = [per[plus, sigma][n] - per[minus, sigma][n] for n in names]
            axis.plot([motion[n] for n in names], gains, marker, label=label)
        axis.axhline(0, color="grey", lw=0.8)
        axis.set_title(f"AWGN σ = {sigma:g}")
        axis.set_xlabel("motion, mean flow px per frame")
    np.atleast_1d(axes)[0].set_ylabel("PSNR gain from the past, dB")
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sigmas", type=lambda t: [float(s) for s in t.split(",")], default=[20.0, 30.0, 50.0]
    )
    parser.add_argument("--from-json", type=Path, help="re-render an earlier run's report")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    args = parser.parse_args()
    if args.from_json:
        doc = json.loads(args.from_json.read_text())
        save_results(args.out, "vbm3d_temporal_gain", args.label, doc, render, plot)
        return 0
    if reason := unavailable_reason("vbm3d"):
        print(f"vbm3d_temporal_gain: {reason}", file=sys.stderr)
        return 1
    doc = {
        "machine": machine_record(),
        "command": " ".join(sys.argv),
        "sigmas": args.sigmas,
        "motion_px": sequence_motion(),
        "rows": measure(args),
    }
    save_results(args.out, "vbm3d_temporal_gain", args.label, doc, render, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
