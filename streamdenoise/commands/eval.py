"""``streamdenoise eval``: denoising quality of the models and the classical baselines.

Also ``--tune-classical``: grid-search the classical filters' settings per σ on training
videos and write ``streamdenoise/backends/classical_presets.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from streamdenoise import settings as table
from streamdenoise.commands import write_reports
from streamdenoise.errors import UsageError

# Tuned by --tune-classical; cbm3d takes the noise σ as it is (BM3D's own parameter).
CLASSICAL = ("hqdn3d", "nlmeans", "atadenoise", "bm3d", "vbm3d", "opencv-nlm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.EVAL)


def earlier_report(path, noise: str, protocol: str, isa_cap: str | None) -> dict:
    """A ``--merge`` report, read and checked before anything is measured: rows of another
    noise, protocol or kernel cap cannot share a table."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--merge: cannot read {path}: {err}") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("results"), list):
        raise UsageError(f"--merge: {path} is not an eval report")
    if (earlier.get("noise"), earlier.get("protocol")) != (noise, protocol):
        raise UsageError(f"--merge: {path} used another --noise or --protocol")
    if earlier.get("isa_cap") != isa_cap:
        raise UsageError(f"--merge: {path} ran with another ONEDNN_MAX_CPU_ISA")
    return earlier


def merge_reports(report: dict, earlier: dict) -> None:
    """Add ``earlier``'s rows that this run did not recompute (same dataset/backend/σ/noise),
    so slow baselines can be measured once and the models re-measured alone. Rows measured on
    another CPU say which (``fps_machine``): their quality holds anywhere, their fps does not."""
    from streamdenoise.lab.speed import cpu_description

    def key(row: dict) -> tuple:
        return row["dataset"], row["backend"], row["sigma"]

    have = {key(r) for r in report["results"]}
    kept = [r for r in earlier["results"] if key(r) not in have]
    there = earlier.get("machine")
    if there and there.get("cpu") != (report.get("machine") or {}).get("cpu"):
        for row in kept:
            row.setdefault("fps_machine", cpu_description(there))
    report["results"] = kept + report["results"]
    report["datasets"] = list(dict.fromkeys(earlier.get("datasets", []) + report["datasets"]))
    report["commands"] = earlier.get("commands", []) + report["commands"]


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.quality import BackendSpec, evaluate, markdown, parse_sigmas
    from streamdenoise.lab.speed import machine_record

    given = table.from_args(args, table.EVAL)
    sigmas = parse_sigmas(given["sigma"])
    backends = given["eval_backends"]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if given["tune_classical"]:
        from streamdenoise.backends.classical import PRESETS_PATH
        from streamdenoise.lab.tune_classical import tune_classical

        data = (given["data"] or [table.data_dir() / "train" / "videos"])[0]
        chosen = [b for b in backends.split(",") if b in CLASSICAL] or list(CLASSICAL)
        tune_classical(data, sigmas, chosen, PRESETS_PATH, log=log)
        print(f"wrote {PRESETS_PATH}")
        return 0
    specs = [BackendSpec.parse(b.strip()) for b in backends.split(",") if b.strip()]
    if not specs:
        raise UsageError("--backends is empty")
    datasets = given["data"] or [table.data_dir() / "val" / "videos"]
    # int8 kernels round differently per instruction set: a capped run says so
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    merged = [
        earlier_report(path, given["noise"], given["protocol"], cap)
        for path in given["merge"] or []
    ]
    report = evaluate(
        datasets,
        sigmas,
        specs,
        given["noise"],
        given["protocol"],
        given["seed"],
        given["sequence_frames"],
        log,
        still=given["still"],
    )
    report["datasets"] = [str(d) for d in datasets]
    report["machine"] = machine_record()  # of this run; merged rows keep only their commands
    report["commands"] = [(f"ONEDNN_MAX_CPU_ISA={cap} " if cap else "") + args.command_line]
    if cap:
        report["isa_cap"] = cap
    for earlier in merged:
        merge_reports(report, earlier)
    summary = markdown(report)
    write_reports((given["json"], json.dumps(report, indent=1)), (given["markdown"], summary))
    print(summary)
    return 0
