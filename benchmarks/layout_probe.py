"""What a cheaper per-frame layout would cost on this CPU before training it: candidate
networks with random weights (speed does not depend on the values) timed beside the shipped
``tiny`` through a backend's ``process()``, one interleaved run (:mod:`tier_speed`'s timing).

    python benchmarks/layout_probe.py --label zen3

Each candidate is ``tiny``'s network with other channels per level, convolutions per level
or levels, or entering at quarter resolution (a stride-4 stem: no half-resolution tensor at
all; the output conv predicts each 4×4 block). Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from tier_speed import arguments, run

from streamdenoise.lab.trainer import TINY_CONFIG
from streamdenoise.models.nets import build_net
from streamdenoise.models.weights import save_weights

#: name → (channels per level, convolutions per level, stem stride)
CANDIDATES = {
    "half-12ch": ((12, 16, 32, 64), (1, 1, 2, 2), 2),
    "one-conv": ((16, 16, 32, 64), (1, 1, 1, 1), 2),
    "slim": ((12, 12, 24, 48), (1, 1, 1, 1), 2),
    "three-levels": ((16, 16, 32), (1, 1, 2), 2),
    "quarter-24": ((24, 32, 64), (1, 2, 2), 4),
    "quarter-32": ((32, 32, 64), (1, 2, 2), 4),
    "quarter-48": ((48, 32, 64), (1, 2, 2), 4),
    "quarter-32-conv": ((32, 32, 64), (2, 2, 2), 4),
}


def candidate_files(folder: Path) -> list[str]:
    paths = []
    for name, (channels, convs, stride) in CANDIDATES.items():
        config = TINY_CONFIG.from_dict(
            TINY_CONFIG.to_dict()
            | {
                "channels": channels,
                "enc_convs": convs,
                "dec_convs": (0,) * len(channels),
                "unshuffle": stride,
                "stem_kernel": max(stride, TINY_CONFIG.stem_kernel),
            }
        )
        torch.manual_seed(0)
        path = folder / f"{name}.pt"
        save_weights(path, name, build_net(config).eval(), {"note": "random weights: speed only"})
        paths.append(str(path))
    return paths


def to_markdown(doc: dict) -> str:
    lines = [
        f"# Per-frame layouts against `tiny` through `{doc['backend']}` `process()` "
        f"({doc['label']})",
        "",
        f"CPU: {doc['machine']['cpu'].get('model')} "
        f"({', '.join(doc['machine']['cpu'].get('flags', []))}); random weights; median ms per "
        "frame over interleaved rounds. Channels and convolutions per level (stem stride): "
        + "; ".join(f"{n} {c} × {v} (/{s})" for n, (c, v, s) in CANDIDATES.items()),
        "",
        "| layout | precision | size | GMAC | ms/frame | × tiny |",
        "|---|---|---|---:|---:|---:|",
    ]
    base = {(r["size"], r["precision"]): r["ms_per_frame_p50"] for r in doc["rows"]
            if r["model"] == "tiny"}  # fmt: skip
    for r in doc["rows"]:
        ratio = r["ms_per_frame_p50"] / base[(r["size"], r["precision"])]
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['size']} | {r['gmac_per_frame']} | "
            f"{r['ms_per_frame_p50']:.1f} | {ratio:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = arguments(__doc__.splitlines()[0], "layout_probe").parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run(args, ["tiny", *candidate_files(Path(folder))], to_markdown)


if __name__ == "__main__":
    main()
