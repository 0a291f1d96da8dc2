"""What V-BM3D's block step and search range are worth: quality and time per setting.

    STREAMDENOISE_VAPOURSYNTH_PYTHON=~/.vs/bin/python \\
        python benchmarks/vbm3d_settings.py --frames 3 --sigma 25 --label L

``bm3dcpu`` defaults to a reference block every 8 pixels (8×8 blocks that do not overlap)
and a 9×9 search: its fast setting. BM3D's authors step by 3 (Dabov et al., IEEE TIP 2007).
Each setting runs causally (radius 1) on the first ``--frames`` frames of every sequence of
both validation sets with ``eval``'s noise and scores the last frame (the one with a past),
so the settings compare on the same frames, in one run; seconds are the time inside
``process()`` over all frames (a quiet machine gives meaningful ratios).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite.report import machine_lines, save_results, table  # noqa: E402

from streamdenoise.backends import create_backend, unavailable_reason  # noqa: E402
from streamdenoise.lab.image_metrics import psnr  # noqa: E402
from streamdenoise.lab.quality import load_sequences, make_noisy, run_backend  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.lab.tune_classical import forced_params  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "val"
SETS = ("videos", "videos-motion")
#: (block_step, bm_range): the plugin's default, then denser steps and a wider search
SETTINGS = ((8, 9), (4, 16), (3, 16), (3, 24))


def measure(args: argparse.Namespace) -> list[dict]:
    sets = {name: load_sequences(DATA / name, args.frames) for name in SETS}
    rows = []
    for step, search in SETTINGS:
        params = {"sigma": args.factor * args.sigma, "radius": 1, "block_step": step,
                  "bm_range": search, "final": 1}  # fmt: skip
        row = {"block_step": step, "bm_range": search, "seconds": 0.0}
        for name, seqs in sets.items():
            scores = []
            for index, seq in enumerate(seqs):
                noisy = make_noisy(seq, index, args.sigma, "awgn", 0)[0]
                with forced_params("vbm3d", params):
                    backend = create_backend("vbm3d", sigma=args.sigma)
                    try:
                        outputs, spent = run_backend(backend, seq.frames, noisy)
                    finally:
                        backend.close()
                scores.append(psnr(outputs[-1], seq.frames[-1]))
                row["seconds"] += spent
            row[name] = float(np.mean(scores))
        rows.append(row)
        print(row, flush=True)
    return rows


def render(doc: dict) -> str:
    base = doc["rows"][0]
    lines = [
        "# V-BM3D (bm3dcpu, causal, radius 1): block step and search range",
        "",
        *machine_lines(doc["machine"]),
        "",
        f"AWGN σ = {doc['sigma']:g} (quantized, `eval`'s noise), sigma factor "
        f"{doc['factor']:g}; PSNR dB of frame {doc['frames']} of every sequence (the first "
        f"{doc['frames']} run causally), mean per set; seconds in `process()` over all "
        "frames of both sets, and their ratio to the plugin's default.",
        "",
        *table(
            ["block step", "search", "val/videos", "val/videos-motion", "seconds", "× time"],
            [
                [
                    str(r["block_step"]),
                    f"{r['bm_range']}×{r['bm_range']}",
                    f"{r['videos']:.2f}",
                    f"{r['videos-motion']:.2f}",
                    f"{r['seconds']:.1f}",
                    f"{r['seconds'] / base['seconds']:.1f}",
                ]
                for r in doc["rows"]
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--factor", type=float, default=1.6, help="plugin sigma = factor·σ")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality")
    args = parser.parse_args()
    if reason := unavailable_reason("vbm3d"):
        print(f"vbm3d_settings: {reason}", file=sys.stderr)
        return 1
    doc = {
        "machine": machine_record(),
        "command": " ".join(sys.argv),
        "sigma": args.sigma,
        "factor": args.factor,
        "frames": args.frames,
        "rows": measure(args),
    }
    save_results(args.out, "vbm3d_settings", args.label, doc, render, lambda *_: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
