"""Where a flow-aligned recurrent tier's lead over its per-frame twin comes from, and how much
better motion would add.

    python benchmarks/motion_oracle.py --label xeon-amx

The recurrent tier (default ``wide-temporal``) runs on `eval`'s noisy frames (8-bit AWGN, seed
0) four ways, differing only in what the host's dense flow is measured on:

- ``none``: the same grey image every frame, so the flow is zero and the state is never moved
  (the recurrence without motion compensation);
- ``noisy``: the noisy frames, as the product does;
- ``blurred``: the noisy frames after a Gaussian blur (σ = 1 px), a cheap denoise of what the
  flow sees;
- ``clean``: the clean frames — an oracle no camera has: the most any better flow estimator
  could give this network.

Beside them the per-frame tier of the same network cost (default ``wide``). Scores as `eval`
computes them: PSNR/SSIM per frame, mean per sequence, mean over the sequences; flicker
likewise. The substitution is done by handing the motion estimator
(``streamdenoise.models.motion.grey_frame``) another image for each noisy frame; the network,
its state and the warp are the product's own. Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import streamdenoise.models.motion as motion
from streamdenoise.lab.quality import (
    BackendSpec,
    create,
    load_sequences,
    make_noisy,
    run_backend,
    sequence_scores,
)
from streamdenoise.lab.speed import cpu_description, machine_record, write_report

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/datasets/val"
FLOW_SOURCES = ("none", "noisy", "blurred", "clean")
BLUR_SIGMA_PX = 1.0

#: id(noisy frame) → the image the motion estimator is to see instead (see the docstring)
_seen_by_flow: dict[int, np.ndarray] = {}
_product_grey_frame = motion.grey_frame


def _grey_frame(image: np.ndarray) -> np.ndarray:
    return _product_grey_frame(_seen_by_flow.get(id(image), image))


motion.grey_frame = _grey_frame


def flow_images(source: str, noisy: list[np.ndarray], clean: list[np.ndarray]) -> list:
    """What the motion estimator sees for each noisy frame under ``source``."""
    if source == "none":
        return [clean[0]] * len(noisy)
    if source == "blurred":
        return [cv2.GaussianBlur(n, (0, 0), BLUR_SIGMA_PX) for n in noisy]
    return list(clean if source == "clean" else noisy)


def score(model: str, source: str | None, sequences, sigma: float) -> dict:
    """`eval`'s scores of ``model`` with its flow measured on ``source`` (None: per-frame)."""
    rows = []
    for i, seq in enumerate(sequences):
        noisy, _ = make_noisy(seq, i, sigma, "awgn", 0)
        _seen_by_flow.clear()
        if source is not None:
            for frame, seen in zip(noisy, flow_images(source, noisy, seq.frames), strict=True):
                _seen_by_flow[id(frame)] = seen
        backend = create(BackendSpec.parse(f"torch:{model}"), None)
        try:
            outs, _ = run_backend(backend, seq.frames, noisy)
        finally:
            backend.close()
        rows.append(sequence_scores(seq, outs))
    return {
        key: round(float(np.mean([r[key] for r in rows])), 4 if key == "ssim" else 3)
        for key in ("psnr", "ssim", "flicker")
    }


def to_markdown(doc: dict) -> str:
    lines = [
        f"# What motion buys `{doc['recurrent']}` over `{doc['per_frame']}` ({doc['label']})",
        "",
        f"CPU: {cpu_description(doc['machine'])} (quality does not depend on it). 8-bit AWGN "
        "(`eval`'s noise, seed 0), torch fp32; PSNR dB / SSIM and flicker (lower is steadier) "
        "as `eval` scores them. Rows of the recurrent tier differ only in what its dense flow "
        "is measured on: `none` = no motion compensation, `noisy` = the product, `blurred` = "
        f"noisy frames blurred (σ = {BLUR_SIGMA_PX:g} px), `clean` = an oracle.",
    ]
    for data in doc["datasets"]:
        lines += ["", f"## {data['name']} ({data['frames']} frames per sequence)", ""]
        sigmas = doc["sigmas"]
        lines.append("| contender | " + " | ".join(f"σ = {s}" for s in sigmas) + " | flicker |")
        lines.append("|---|" + "---|" * len(sigmas) + "---:|")
        for row in data["rows"]:
            cells = [
                f"{row['scores'][s]['psnr']:.2f} / {row['scores'][s]['ssim']:.3f}" for s in sigmas
            ]
            fl = np.mean([row["scores"][s]["flicker"] for s in sigmas])
            lines.append(f"| {row['contender']} | " + " | ".join(cells) + f" | {fl:+.2f} |")
        base = data["rows"][0]["scores"]
        lines += ["", f"Lead over `{doc['per_frame']}`, dB:", ""]
        lines.append("| flow measured on | " + " | ".join(f"σ = {s}" for s in sigmas) + " |")
        lines.append("|---|" + "---:|" * len(sigmas))
        for row in data["rows"][1:]:
            leads = [f"{row['scores'][s]['psnr'] - base[s]['psnr']:+.2f}" for s in sigmas]
            source = row["contender"].split(", flow on ")[-1]
            lines.append(f"| {source} | " + " | ".join(leads) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recurrent", default="wide-temporal")
    parser.add_argument("--per-frame", default="wide")
    parser.add_argument("--sigma", default="20,30,40,50")
    parser.add_argument("--label", default="native")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/quality/motion_oracle"
    )
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigma.split(",")]
    datasets = []
    for folder, frames in ((DATA / "videos", 20), (DATA / "videos-motion", 10)):
        sequences = load_sequences(folder, frames)
        rows = []
        contenders = [(args.per_frame, None)] + [(args.recurrent, s) for s in FLOW_SOURCES]
        for model, source in contenders:
            label = model if source is None else f"{model}, flow on {source}"
            scores = {f"{s:g}": score(model, source, sequences, s) for s in sigmas}
            print(folder.name, label, {s: v["psnr"] for s, v in scores.items()}, flush=True)
            rows.append({"contender": label, "scores": scores})
        datasets.append({"name": f"val/{folder.name}", "frames": frames, "rows": rows})
    doc = {
        "label": args.label,
        "machine": machine_record(),
        "recurrent": args.recurrent,
        "per_frame": args.per_frame,
        "sigmas": [f"{s:g}" for s in sigmas],
        "datasets": datasets,
    }
    write_report(Path(f"{args.out}_{args.label}"), doc, to_markdown(doc))


if __name__ == "__main__":
    main()
