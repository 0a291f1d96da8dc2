"""``streamdenoise bench``: model-only and end-to-end fps/latency per backend, precision, size."""

from __future__ import annotations

import argparse
import json
import sys

from streamdenoise import settings as table
from streamdenoise.commands import write_reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.BENCH)


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.speed import BenchConfig, parse_backends, run_bench, to_markdown

    given = table.from_args(args, table.BENCH)
    config = BenchConfig(
        backends=parse_backends(given["bench_backends"]),
        warmup_s=given["warmup"],
        clip=str(given["clip"]) if given["clip"] else None,
        **table.pick(given, "sizes", "precisions", "batch", "threads", "seconds", "rounds"),
        **table.pick(given, "model", "pipeline", "pipeline_output", "presets"),
    )
    doc = run_bench(config, log=lambda line: print(line, file=sys.stderr))
    markdown = to_markdown(doc)
    write_reports((given["json"], json.dumps(doc, indent=2)), (given["markdown"], markdown))
    print(markdown)
    return 0
