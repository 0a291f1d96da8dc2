"""``streamdenoise export``: write the ONNX graph (float, or int8 calibrated on real images),
or build a TensorRT engine ahead of time."""

from __future__ import annotations

import argparse
from pathlib import Path

from streamdenoise import settings as table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    table.add_arguments(parser, table.EXPORT)


def run(args: argparse.Namespace) -> int:
    from streamdenoise import artifacts
    from streamdenoise.backends import create_backend
    from streamdenoise.models import DEFAULT_MODEL, weights_path
    from streamdenoise.models.onnx import load_net, net_hash, write_export

    given = table.from_args(args, table.EXPORT)
    model = given["export_model"] or DEFAULT_MODEL
    out_dir = given["export_out"] or artifacts.onnx_cache()
    name = Path(model).stem
    if given["format"] == "onnx":
        print(write_export(load_net(model), out_dir, name, weights_path(model)))
        return 0
    if given["format"] == "onnx-int8":
        from streamdenoise.errors import UsageError
        from streamdenoise.lab.quantize import Int8Recipe, calibration_images, quantize_onnx
        from streamdenoise.models.onnx import find_or_export_onnx

        if given["calibration"] is None:
            raise UsageError("--format onnx-int8 needs --calibration FOLDER_OF_CLEAN_IMAGES")
        images = calibration_images(given["calibration"])
        net = load_net(model)
        source = find_or_export_onnx(name, net, weights_path(model))
        target = quantize_onnx(
            source,
            out_dir / artifacts.int8_filename(source.name),
            images,
            Int8Recipe(output=given["int8_output"], ranges=given["int8_ranges"]),
        )
        artifacts.record_export(
            target, weights_path(model), name, net_hash(net), net.config.to_dict()
        )
        print(target)
        return 0
    width, height = given["export_size"]
    backend = create_backend(
        "tensorrt",
        model=model,
        precision=given["export_precision"],
        engine_cache=given["engine_cache"],
    )
    try:
        backend.prepare(width, height)
        print(backend.describe().get("plan"))
    finally:
        backend.close()
    return 0
