"""How much quality does a single pass of a model leave on CBSD68: capacity or training?

Runs models on CBSD68 at AWGN σ = 25 (the ``eval`` protocol: noise clipped and
quantised to 8 bits, seed 0, the same noisy images as ``streamdenoise eval``) through the
torch backend the pipeline uses, once as shipped and once as a geometric self-ensemble:
the image in all eight orientations (flips and transposes), each output turned back and
the eight averaged. The ensemble costs 8× the compute, so it is no candidate for the
real-time budget; its gain says how much a single pass of the network leaves on the table.

Writes ``benchmarks/results/quality/cbsd68_headroom.{json,md}``.

    .venv/bin/python benchmarks/cbsd68_headroom.py [--models spatial,PATH.pt] [--sigma 25]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamdenoise.backends import create_backend
from streamdenoise.lab.image_metrics import psnr
from streamdenoise.lab.quality import load_sequences, make_noisy
from streamdenoise.lab.speed import machine_record

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "quality"
CBSD68 = REPO.parent / "shared" / "datasets" / "val" / "images" / "CBSD68"

Orientation = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def orientations() -> list[Orientation]:
    """(forward, inverse) pairs for the eight symmetries of a rectangle's pixel grid."""
    pairs = []
    for transpose in (False, True):
        for k in range(4):

            def forward(a: np.ndarray, k: int = k, t: bool = transpose) -> np.ndarray:
                return np.ascontiguousarray(np.rot90(a.transpose(1, 0, 2) if t else a, k))

            def inverse(a: np.ndarray, k: int = k, t: bool = transpose) -> np.ndarray:
                back = np.rot90(a, -k)
                return np.ascontiguousarray(back.transpose(1, 0, 2) if t else back)

            pairs.append((forward, inverse))
    return pairs


def measure(model: str, images: list, sigma: float) -> dict:
    backend = create_backend("torch", model=model, precision="fp32")
    single, ensemble = [], []
    for index, seq in enumerate(images):
        clean = seq.frames[0]
        noisy = make_noisy(seq, index, sigma, "awgn", seed=0)[0][0]
        outs = []
        for forward, inverse in orientations():
            backend.reset()
            outs.append(inverse(backend.process(forward(noisy))).astype(np.float32))
        single.append(psnr(outs[0].astype(np.uint8), clean))
        mean = np.clip(np.mean(outs, axis=0) + 0.5, 0, 255).astype(np.uint8)
        ensemble.append(psnr(mean, clean))
    return {
        "model": model,
        "sigma": sigma,
        "images": len(images),
        "psnr": round(float(np.mean(single)), 3),
        "psnr_self_ensemble_x8": round(float(np.mean(ensemble)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="spatial", help="model names or .pt files")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--data", type=Path, default=CBSD68)
    args = parser.parse_args()
    images = load_sequences(args.data)
    rows = [measure(m, images, args.sigma) for m in args.models.split(",")]
    report = {"machine": machine_record(), "data": str(args.data), "results": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cbsd68_headroom.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"CBSD68 ({len(images)} images), AWGN σ = {args.sigma:g}, quantised input, seed 0; "
        "torch fp32 backend.",
        "",
        "| model | PSNR (one pass) | ×8 self-ensemble | gain |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        gain = r["psnr_self_ensemble_x8"] - r["psnr"]
        lines.append(
            f"| {r['model']} | {r['psnr']:.2f} | {r['psnr_self_ensemble_x8']:.2f} | +{gain:.2f} |"
        )
    (RESULTS / "cbsd68_headroom.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
