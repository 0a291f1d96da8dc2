"""``streamdenoise eval``: denoising quality of the models and the classical baselines.

Also ``--tune-classical``: grid-search the classical filters' settings per σ on training
videos and write ``streamdenoise/backends/classical_presets.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamdenoise.errors import UsageError

DEFAULT_BACKENDS = "identity,temporal,spatial,hqdn3d,nlmeans,atadenoise,opencv-nlm"
CLASSICAL = ("hqdn3d", "nlmeans", "atadenoise", "opencv-nlm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        type=Path,
        help="clean images folder, folder of frame folders, or video file (repeatable) "
        "[../shared/datasets/val/videos]",
    )
    parser.add_argument("--sigma", default="10,20,30,40,50", help="noise levels, 8-bit scale")
    parser.add_argument(
        "--backends",
        default=DEFAULT_BACKENDS,
        help="comma list: temporal, spatial, BACKEND[:MODEL][@PRECISION], identity "
        "(= the noisy input), hqdn3d, nlmeans, atadenoise, opencv-nlm",
    )
    parser.add_argument("--noise", choices=("awgn", "realistic"), default="awgn")
    parser.add_argument("--protocol", choices=("quantized", "float"), default="quantized")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-frames", type=int, help="frames per sequence (default: all)")
    parser.add_argument(
        "--still",
        type=int,
        default=1,
        metavar="N",
        help="hold each still image for N frames (a fixed camera; fresh noise every frame)",
    )
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        help="earlier JSON report(s) whose rows are kept unless this run recomputes them",
    )
    parser.add_argument("--markdown", type=Path, help="write the summary table here")
    parser.add_argument(
        "--tune-classical",
        action="store_true",
        help="grid-search classical settings on --data (training videos) and write the presets",
    )


def merge_reports(report: dict, earlier: dict) -> None:
    """Add ``earlier``'s rows that this run did not recompute (same dataset/backend/σ/noise),
    so slow baselines can be measured once and the models re-measured alone."""
    if (earlier.get("noise"), earlier.get("protocol")) != (report["noise"], report["protocol"]):
        raise UsageError("--merge: the earlier report used another --noise or --protocol")

    def key(row: dict) -> tuple:
        return row["dataset"], row["backend"], row["sigma"]

    have = {key(r) for r in report["results"]}
    report["results"] = [r for r in earlier["results"] if key(r) not in have] + report["results"]
    report["datasets"] = list(dict.fromkeys(earlier.get("datasets", []) + report["datasets"]))
    report["commands"] = earlier.get("commands", []) + report["commands"]


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.quality import BackendSpec, evaluate, markdown, parse_sigmas

    sigmas = parse_sigmas(args.sigma)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.tune_classical:
        from streamdenoise.backends.classical import PRESETS_PATH
        from streamdenoise.lab.tune_classical import tune_classical

        data = (args.data or [Path("../shared/datasets/train/videos")])[0]
        chosen = [b for b in args.backends.split(",") if b in CLASSICAL] or list(CLASSICAL)
        tune_classical(data, sigmas, chosen, PRESETS_PATH, log=log)
        print(f"wrote {PRESETS_PATH}")
        return 0
    specs = [BackendSpec.parse(b.strip()) for b in args.backends.split(",") if b.strip()]
    if not specs:
        raise UsageError("--backends is empty")
    datasets = args.data or [Path("../shared/datasets/val/videos")]
    if args.still < 1:
        raise UsageError(f"--still must be ≥ 1, got {args.still}")
    report = evaluate(
        datasets,
        sigmas,
        specs,
        args.noise,
        args.protocol,
        args.seed,
        args.max_frames,
        log,
        still=args.still,
    )
    report["datasets"] = [str(d) for d in datasets]
    report["commands"] = ["streamdenoise " + " ".join(sys.argv[1:])]
    for path in args.merge or []:
        merge_reports(report, json.loads(path.read_text()))
    table = markdown(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    print(table)
    return 0
