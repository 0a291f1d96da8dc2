"""``streamdenoise bench``: model-only and end-to-end fps/latency per backend, precision, size."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamdenoise.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "--backends",
        default="torch,onnxruntime,openvino,tensorrt",
        metavar="LIST|all",
        help="comma-separated backends, or all registered ones [%(default)s]",
    )
    add(
        "--sizes",
        default="640x360,1280x720,1920x1080",
        metavar="WxH,...",
        help="frame sizes [%(default)s]",
    )
    add(
        "--precision",
        metavar="LIST",
        help="only these precisions, e.g. fp32,bf16 [each backend's own set]",
    )
    add(
        "--batch",
        type=int,
        default=1,
        metavar="N",
        help="N > 1: N stacked streams per network-graph call (graph time only) [1]",
    )
    add(
        "--seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="measured seconds per case, split over the rounds [%(default)s]",
    )
    add(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads per neural backend (as `run --threads`) [the runtime's choice]",
    )
    add("--warmup", type=float, default=1.0, metavar="S", help="warm-up seconds per case [1]")
    add(
        "--rounds",
        type=int,
        default=3,
        metavar="N",
        help="interleaved rounds (order rotated each round) [%(default)s]",
    )
    add("--model", metavar="NAME", help="model for the neural backends [the default model]")
    add(
        "--pipeline",
        action="store_true",
        help="also run the full pipeline (decode → denoise → encode) per case",
    )
    add("--clip", metavar="PATH", help="input clip for --pipeline [a generated demo clip]")
    add(
        "--pipeline-output",
        choices=("mp4", "null"),
        default="mp4",
        help="--pipeline sink: x264 MP4 file or null [%(default)s]",
    )
    add(
        "--preset",
        default="veryfast",
        metavar="LIST",
        help="libx264 presets for --pipeline MP4 runs, each measured as its own case "
        "(e.g. ultrafast,veryfast) [%(default)s]",
    )
    add("--json", type=Path, metavar="OUT", help="write the results as JSON")
    add("--markdown", type=Path, metavar="OUT", help="write the results as a markdown table")


def run(args: argparse.Namespace) -> int:
    from streamdenoise.lab.speed import (
        BenchConfig,
        parse_backends,
        parse_sizes,
        run_bench,
        to_markdown,
    )
    from streamdenoise.options import X264_PRESETS

    if args.batch < 1 or args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        raise UsageError("--batch and --rounds must be >= 1, --seconds > 0, --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise UsageError("--threads must be >= 1")
    if args.clip and not Path(args.clip).is_file():
        raise UsageError(f"--clip {args.clip}: no such file")
    presets = [p.strip() for p in args.preset.split(",") if p.strip()]
    unknown = [p for p in presets if p not in X264_PRESETS]
    if unknown or not presets:
        raise UsageError(f"--preset {args.preset}: choose from {', '.join(X264_PRESETS)}")
    config = BenchConfig(
        backends=parse_backends(args.backends),
        sizes=parse_sizes(args.sizes),
        precisions=[p.strip() for p in args.precision.split(",")] if args.precision else None,
        batch=args.batch,
        threads=args.threads,
        seconds=args.seconds,
        warmup_s=args.warmup,
        rounds=args.rounds,
        model=args.model,
        pipeline=args.pipeline,
        clip=args.clip,
        pipeline_output=args.pipeline_output,
        presets=presets,
    )
    doc = run_bench(config, log=lambda line: print(line, file=sys.stderr))
    markdown = to_markdown(doc)
    for path, text in ((args.json, json.dumps(doc, indent=2)), (args.markdown, markdown)):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
    print(markdown)
    return 0
