"""``streamdenoise export``: write the ONNX graph, or build a TensorRT engine ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--model", default=None, metavar="NAME", help="model to export [the default model]")
    add("--format", choices=("onnx", "tensorrt"), default="onnx", help="[%(default)s]")
    add(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="ONNX output folder [engines/ of the checkout, else the user cache]",
    )
    add(
        "--size",
        default="1920x1080",
        metavar="WxH",
        help="tensorrt: largest frame size the engine's profile covers [%(default)s]",
    )
    add("--precision", default="fp16", choices=("fp16", "fp32"), help="tensorrt: [%(default)s]")


def run(args: argparse.Namespace) -> int:
    from streamdenoise.backends import create_backend
    from streamdenoise.commands.run import parse_size
    from streamdenoise.export import engines_dir, export_onnx, load_net, net_hash, onnx_filename
    from streamdenoise.models import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    if args.format == "onnx":
        net = load_net(model)
        out_dir = args.out or engines_dir()
        path = export_onnx(net, out_dir / onnx_filename(model, net_hash(net)), model)
        print(path)
        return 0
    width, height = parse_size(args.size)
    backend = create_backend("tensorrt", model=model, precision=args.precision)
    try:
        backend.prepare(width, height)
        print(backend.describe().get("plan"))
    finally:
        backend.close()
    return 0
