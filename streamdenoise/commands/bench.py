"""``streamdenoise bench``: model-only and end-to-end fps/latency per backend, precision, size."""

from __future__ import annotations

import argparse
import json
import sys

from streamdenoise import settings as table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.BENCH)


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.speed import BenchConfig, parse_backends, run_bench, to_markdown

    given = table.from_args(args, table.BENCH)
    config = BenchConfig(
        backends=parse_backends(given["bench_backends"]),
        sizes=given["sizes"],
        precisions=given["precisions"],
        batch=given["batch"],
        threads=given["threads"],
        seconds=given["seconds"],
        warmup_s=given["warmup"],
        rounds=given["rounds"],
        model=given["model"],
        pipeline=given["pipeline"],
        clip=str(given["clip"]) if given["clip"] else None,
        pipeline_output=given["pipeline_output"],
        presets=given["presets"],
    )
    doc = run_bench(config, log=lambda line: print(line, file=sys.stderr))
    markdown = to_markdown(doc)
    for path, text in ((given["json"], json.dumps(doc, indent=2)), (given["markdown"], markdown)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
    print(markdown)
    return 0
