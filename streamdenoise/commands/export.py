"""``streamdenoise export``: write the ONNX graph (float, or int8 calibrated on real images),
or build a TensorRT engine ahead of time."""

from __future__ import annotations

import argparse

from streamdenoise import settings as table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.EXPORT)


def run(args: argparse.Namespace) -> int:
    from streamdenoise.backends import create_backend
    from streamdenoise.models import DEFAULT_MODEL
    from streamdenoise.models.onnx import (
        engines_dir,
        export_onnx,
        load_net,
        net_hash,
        onnx_filename,
    )

    given = table.from_args(args, table.EXPORT)
    model = given["export_model"] or DEFAULT_MODEL
    if given["format"] == "onnx":
        net = load_net(model)
        out_dir = given["export_out"] or engines_dir()
        path = export_onnx(net, out_dir / onnx_filename(model, net_hash(net)), model)
        print(path)
        return 0
    if given["format"] == "onnx-int8":
        from streamdenoise.errors import UsageError
        from streamdenoise.lab.quantize import calibration_images, int8_filename, quantize_onnx
        from streamdenoise.models.onnx import find_or_export_onnx

        if given["calibration"] is None:
            raise UsageError("--format onnx-int8 needs --calibration FOLDER_OF_CLEAN_IMAGES")
        images = calibration_images(given["calibration"])
        source = find_or_export_onnx(model)
        target = (given["export_out"] or engines_dir()) / int8_filename(source.name)
        print(quantize_onnx(source, target, images))
        return 0
    width, height = given["export_size"]
    backend = create_backend("tensorrt", model=model, precision=given["export_precision"])
    try:
        backend.prepare(width, height)
        print(backend.describe().get("plan"))
    finally:
        backend.close()
    return 0
