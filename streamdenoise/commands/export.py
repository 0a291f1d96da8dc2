"""``streamdenoise export``: write the ONNX graph (float, or int8 calibrated on real images),
or build a TensorRT engine ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--model", default=None, metavar="NAME", help="model to export [the default model]")
    add(
        "--format",
        choices=("onnx", "onnx-int8", "tensorrt"),
        default="onnx",
        help="onnx: the float graph; onnx-int8: its int8 QDQ version for `--backend openvino "
        "--precision int8` (needs --calibration); tensorrt: build the engine [%(default)s]",
    )
    add(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="onnx-int8: folder of clean images (searched recursively), e.g. the training data",
    )
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
    from streamdenoise.models import DEFAULT_MODEL
    from streamdenoise.models.onnx import (
        engines_dir,
        export_onnx,
        load_net,
        net_hash,
        onnx_filename,
    )

    model = args.model or DEFAULT_MODEL
    if args.format == "onnx":
        net = load_net(model)
        out_dir = args.out or engines_dir()
        path = export_onnx(net, out_dir / onnx_filename(model, net_hash(net)), model)
        print(path)
        return 0
    if args.format == "onnx-int8":
        from streamdenoise.errors import UsageError
        from streamdenoise.lab.quantize import calibration_images, int8_filename, quantize_onnx
        from streamdenoise.models.onnx import find_or_export_onnx

        if args.calibration is None:
            raise UsageError("--format onnx-int8 needs --calibration FOLDER_OF_CLEAN_IMAGES")
        images = calibration_images(args.calibration)
        source = find_or_export_onnx(model)
        target = (args.out or engines_dir()) / int8_filename(source.name)
        print(quantize_onnx(source, target, images))
        return 0
    width, height = parse_size(args.size)
    backend = create_backend("tensorrt", model=model, precision=args.precision)
    try:
        backend.prepare(width, height)
        print(backend.describe().get("plan"))
    finally:
        backend.close()
    return 0
