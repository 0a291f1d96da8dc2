"""A bigger body for the CPU tiers: does capacity, not the past, lift fast motion?

    taskset -c 0 python benchmarks/capacity_probe.py train large-temporal --minutes 100 &
    taskset -c 1 python benchmarks/capacity_probe.py train large --minutes 100
    python benchmarks/capacity_probe.py report capacity-probe/*.pt --label L

On fast motion ``wide-temporal`` leads its per-frame network ``wide`` by only 0.4–0.6 dB,
and neither a perfect flow (``motion_oracle.py``) nor a feature state
(``feature_state_probe.py``) moves that; per-frame CBM3D leads both by more than 1 dB on
those frames. If what is missing is spatial capacity, a wider network should gain there —
per frame and recurrent alike — and whether the recurrence's lead grows with it says whether
a GPU-sized recurrent tier can reach the quality a GPU's budget should buy.

The candidates are ``wide`` and ``wide-temporal`` with every level twice as wide (96, 128,
256 channels: 3.6× their GMAC), grown from the shipped weights (``trainer.init_from``: step 0
is exactly the source, the new channels live) and fine-tuned as ``feature_state_probe.py``
fine-tuned its candidate and control (one core each, side by side, the same clips and
validation), so its control's figures apply: ``wide-temporal`` itself gained 0.03 dB on the
Vid4 crops and lost 0.03 on fast motion in 45 minutes. ``train`` also writes a weights file
(``NAME-weights.pt``) that ``streamdenoise eval --backends torch:PATH`` scores on whole
sequences. A quality probe: no speed is measured.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from deep_state_probe import (  # noqa: E402
    fine_tune,
    plot,
    probe_args,
    quality_section,
    training_runs,
)
from suite.report import machine_lines, save_results  # noqa: E402

from streamdenoise.lab import trainer  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.models import WEIGHTS_DIR  # noqa: E402
from streamdenoise.models.macs import count_config_macs  # noqa: E402
from streamdenoise.models.nets import UNetDenoiser, build_net  # noqa: E402
from streamdenoise.models.weights import save_weights  # noqa: E402

#: candidate -> the shipped model it grows from
SOURCES = {"large": "wide", "large-temporal": "wide-temporal"}
WIDTH = 2


def config(name: str):
    """A candidate's architecture (its source's, widened) or a shipped model's."""
    if name not in SOURCES:
        return trainer.default_net_config(name)
    source = trainer.default_net_config(SOURCES[name])
    return replace(source, channels=tuple(WIDTH * c for c in source.channels))


def build(name: str) -> UNetDenoiser:
    net = build_net(config(name))
    trainer.init_from(net, WEIGHTS_DIR / f"{SOURCES[name]}.pt")
    return net


def render(doc: dict) -> str:
    gmac = doc["gmac_720p"]
    lines = [
        "# A twice-as-wide body for `wide` and `wide-temporal`",
        "",
        *machine_lines(doc["machine"]),
        "",
        *(
            f"- `{name}`: `{source}` with {WIDTH}× the channels at every level, "
            f"{gmac[name]:.2f} GMAC per 720p frame (`{source}`: {gmac[source]:.2f}), "
            f"grown from `{source}`'s weights (step 0 is exactly `{source}`)."
            for name, source in SOURCES.items()
        ),
        "",
        *quality_section(doc, " / ".join(f"`{s}`" for s in SOURCES.values())),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    args = probe_args(__doc__, tuple(SOURCES), "capacity-probe")
    if args.action == "train":
        net = build(args.name)
        fine_tune(args, net, trainer.run_clip)
        record = {"command": " ".join(sys.argv), "initialised_from": SOURCES[args.name]}
        save_weights(args.work / f"{args.name}-weights.pt", args.name, net.eval(), record)
        return 0
    doc = {
        "machine": machine_record(),
        "command": " ".join(sys.argv),
        "gmac_720p": {
            name: count_config_macs(config(name)) / 1e9 for name in (*SOURCES, *SOURCES.values())
        },
        "training": training_runs([p for p in args.name if not p.endswith("-weights.pt")]),
    }
    save_results(args.out, "capacity_probe", args.label, doc, render, plot)
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
