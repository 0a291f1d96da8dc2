"""What a cheaper per-frame layout would cost on this CPU before training it: candidate
networks with random weights (speed does not depend on the values) timed beside the shipped
``tiny`` through a backend's ``process()``, one interleaved run (:mod:`tier_speed`'s timing).

    python benchmarks/layout_probe.py --label zen3

Each candidate is ``tiny``'s network with other channels per level, convolutions per level
or levels. Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from tier_speed import measure

from streamdenoise.lab.speed import machine_record, write_report
from streamdenoise.lab.trainer import TINY_CONFIG
from streamdenoise.models.nets import build_net
from streamdenoise.models.weights import save_weights

#: name → (channels per level, convolutions per level)
CANDIDATES = {
    "half-12ch": ((12, 16, 32, 64), (1, 1, 2, 2)),
    "one-conv": ((16, 16, 32, 64), (1, 1, 1, 1)),
    "slim": ((12, 12, 24, 48), (1, 1, 1, 1)),
    "three-levels": ((16, 16, 32), (1, 1, 2)),
}


def candidate_files(folder: Path) -> list[str]:
    paths = []
    for name, (channels, convs) in CANDIDATES.items():
        config = TINY_CONFIG.from_dict(
            TINY_CONFIG.to_dict()
            | {"channels": channels, "enc_convs": convs, "dec_convs": (0,) * len(channels)}
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
        "frame over interleaved rounds. Channels and convolutions per level: "
        + "; ".join(f"{n} {c} × {v}" for n, (c, v) in CANDIDATES.items()),
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--sizes", default="1280x720")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="native")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/layout_probe"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        models = ["tiny", *candidate_files(Path(folder))]
        for text in args.sizes.split(","):
            size = tuple(int(v) for v in text.split("x"))
            rows += measure(models, args.backend, ["fp32"], size, args.seconds, args.rounds)
    doc = {
        "backend": args.backend,
        "label": args.label,
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "machine": machine_record(),
        "rows": rows,
    }
    write_report(args.out.with_name(f"{args.out.name}_{args.label}"), doc, to_markdown(doc))


if __name__ == "__main__":
    main()
