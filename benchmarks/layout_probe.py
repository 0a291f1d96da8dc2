"""What another per-frame layout would cost on this CPU before training it: candidate
networks with random weights (speed does not depend on the values) timed beside shipped
tiers through a backend's ``process()``, one interleaved run (:mod:`tier_speed`'s timing).

    python benchmarks/layout_probe.py --label zen3
    python benchmarks/layout_probe.py --family wider --precisions bf16 --label xeon-amx

``cheaper`` (the default): ``tiny``'s network with other channels per level, convolutions per
level or levels, or entering at quarter resolution (a stride-4 stem: no half-resolution
tensor at all; the output conv predicts each 4×4 block), timed beside ``tiny``. ``wider``:
``nano``'s quarter-resolution layout with more channels or convolutions — a rung between
``nano`` and ``spatial`` — timed beside both. Writes JSON + markdown under ``--out``.
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
CHEAPER = {
    "half-12ch": ((12, 16, 32, 64), (1, 1, 2, 2), 2),
    "one-conv": ((16, 16, 32, 64), (1, 1, 1, 1), 2),
    "slim": ((12, 12, 24, 48), (1, 1, 1, 1), 2),
    "three-levels": ((16, 16, 32), (1, 1, 2), 2),
    "quarter-24": ((24, 32, 64), (1, 2, 2), 4),
    "quarter-32": ((32, 32, 64), (1, 2, 2), 4),
    "quarter-48": ((48, 32, 64), (1, 2, 2), 4),
    "quarter-32-conv": ((32, 32, 64), (2, 2, 2), 4),
}
WIDER = {
    "quarter-32-48-96": ((32, 48, 96), (1, 2, 2), 4),
    "quarter-48-64-128": ((48, 64, 128), (1, 2, 2), 4),
    "quarter-48-64-128-conv": ((48, 64, 128), (2, 2, 2), 4),
    "quarter-64-96-192": ((64, 96, 192), (1, 2, 2), 4),
}
#: family → (its candidates, the shipped tiers they are timed beside; the first is the ratio's)
FAMILIES = {"cheaper": (CHEAPER, ["tiny"]), "wider": (WIDER, ["nano", "spatial"])}


def candidate_files(folder: Path, candidates: dict) -> list[str]:
    paths = []
    for name, (channels, convs, stride) in candidates.items():
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
    candidates, shipped = FAMILIES[doc.get("family", "cheaper")]
    lines = [
        f"# Per-frame layouts against `{shipped[0]}` through `{doc['backend']}` `process()` "
        f"({doc['label']})",
        "",
        f"CPU: {doc['machine']['cpu'].get('model')} "
        f"({', '.join(doc['machine']['cpu'].get('flags', []))}); random weights; median ms per "
        "frame over interleaved rounds. Channels and convolutions per level (stem stride): "
        + "; ".join(f"{n} {c} × {v} (/{s})" for n, (c, v, s) in candidates.items()),
        "",
        f"| layout | precision | size | GMAC | ms/frame | × {shipped[0]} |",
        "|---|---|---|---:|---:|---:|",
    ]
    base = {(r["size"], r["precision"]): r["ms_per_frame_p50"] for r in doc["rows"]
            if r["model"] == shipped[0]}  # fmt: skip
    for r in doc["rows"]:
        ratio = r["ms_per_frame_p50"] / base[(r["size"], r["precision"])]
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['size']} | {r['gmac_per_frame']} | "
            f"{r['ms_per_frame_p50']:.1f} | {ratio:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = arguments(__doc__.splitlines()[0], "layout_probe")
    parser.add_argument("--family", choices=sorted(FAMILIES), default="cheaper")
    args = parser.parse_args()
    candidates, shipped = FAMILIES[args.family]
    with tempfile.TemporaryDirectory() as folder:
        models = [*shipped, *candidate_files(Path(folder), candidates)]
        run(args, models, to_markdown, {"family": args.family})


if __name__ == "__main__":
    main()
