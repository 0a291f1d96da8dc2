"""CBM3D against the CPU tiers on the same later frame of each validation video, where a
recurrent tier has the past it has on a live camera.

    python benchmarks/cbm3d_steady_state.py --label xeon-amx

CBM3D (colour BM3D, both stages, given the true σ) takes minutes per frame, so it denoises
only frame ``--frame`` (0-based) of each sequence of ``--data`` (default ``val/videos``; also
run on ``val/videos-motion``); per-frame tiers denoise that
frame alone too, and recurrent tiers every frame up to it (scored on that one). The noise is
``streamdenoise eval``'s (8-bit AWGN, seed 0): frame k's noise here is the same as in every
eval run. Time: the seconds each contender spent on the scored frame, one core's worth of
work on this machine (CBM3D's numpy runs on one thread). Writes JSON + markdown under
``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from streamdenoise.lab.image_metrics import psnr, ssim
from streamdenoise.lab.quality import BackendSpec, create, load_sequences, make_noisy
from streamdenoise.lab.speed import cpu_description, machine_record, write_report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results/quality"
CONTENDERS = "cbm3d,openvino:wide-temporal@fp32,openvino:wide@fp32,openvino:nano@fp32"


def run_contender(spec: BackendSpec, noisy: list[np.ndarray], sigma: float, frame: int):
    """(output of frame ``frame``, seconds spent on it): recurrent neural tiers see every
    frame before it, everything else that frame alone."""
    backend = create(spec, sigma)
    try:
        recurrent = bool(getattr(backend, "temporal", False))
        # the past for a recurrent tier; a per-frame network's first call compiles its graph
        warm_up = noisy[:frame] if recurrent else [noisy[frame]] if spec.neural else []
        for past in warm_up:
            backend.process(past)
        start = time.perf_counter()
        out = backend.process(noisy[frame])
        return out, time.perf_counter() - start
    finally:
        backend.close()


def to_markdown(doc: dict) -> str:
    sigmas = doc["sigmas"]
    lines = [
        f"# CBM3D and the CPU tiers on frame {doc['frame']} of each `{doc['data']}` sequence "
        f"({doc['label']})",
        "",
        f"CPU: {cpu_description(doc['machine'])}. 8-bit AWGN (`eval`'s noise, seed 0); "
        "recurrent tiers ran every frame before the scored one, per-frame contenders that frame "
        "alone; CBM3D given the true σ. PSNR dB / SSIM, mean over the sequences; seconds on the "
        "scored frame (mean), and its ratio to CBM3D's.",
        "",
        "| contender | " + " | ".join(f"σ = {s}" for s in sigmas) + " | s per frame | "
        "× faster than CBM3D |",
        "|---|" + "---|" * len(sigmas) + "---:|---:|",
    ]
    reference = doc["rows"][0]["seconds"] if doc["rows"][0]["contender"] == "cbm3d" else None
    for row in doc["rows"]:
        cells = [f"{row['psnr'][s]:.2f} / {row['ssim'][s]:.3f}" for s in sigmas]
        ratio = f"{reference / row['seconds']:.0f}" if reference else "–"
        lines.append(
            f"| {row['contender']} | " + " | ".join(cells) + f" | {row['seconds']:.3g} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/datasets/val/videos")
    parser.add_argument("--contenders", default=CONTENDERS)
    parser.add_argument("--sigma", default="25,50")
    parser.add_argument("--frame", type=int, default=9)
    parser.add_argument("--label", default="native")
    parser.add_argument("--out", type=Path, default=RESULTS / "cbm3d_steady")
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigma.split(",")]
    sequences = load_sequences(args.data, args.frame + 1)
    rows = []
    for text in args.contenders.split(","):
        spec = BackendSpec.parse(text)
        scores: dict = {"psnr": {}, "ssim": {}}
        seconds = []
        for sigma in sigmas:
            ps, ss = [], []
            for i, seq in enumerate(sequences):
                noisy, _ = make_noisy(seq, i, sigma, "awgn", 0)
                out, spent = run_contender(spec, noisy, sigma, args.frame)
                ps.append(psnr(out, seq.frames[args.frame]))
                ss.append(ssim(out, seq.frames[args.frame]))
                seconds.append(spent)
                print(f"{text} σ={sigma:g} {seq.name}: {ps[-1]:.2f} dB, {spent:.3g} s", flush=True)
            scores["psnr"][f"{sigma:g}"] = round(float(np.mean(ps)), 3)
            scores["ssim"][f"{sigma:g}"] = round(float(np.mean(ss)), 4)
        rows.append({"contender": text, **scores, "seconds": float(np.mean(seconds))})
    doc = {
        "label": args.label,
        "machine": machine_record(),
        "frame": args.frame,
        "data": f"{args.data.parent.name}/{args.data.name}",
        "sequences": [s.name for s in sequences],
        "sigmas": [f"{s:g}" for s in sigmas],
        "rows": rows,
    }
    write_report(Path(f"{args.out}_{args.label}"), doc, to_markdown(doc))


if __name__ == "__main__":
    main()
