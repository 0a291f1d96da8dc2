"""Where a model's time goes in OpenVINO's CPU plugin: per operation type and the slowest
nodes, from the plugin's own performance counters, for one frame size.

    python benchmarks/openvino_profile.py --model temporal --size 1280x720 --precision f32
    python benchmarks/openvino_profile.py --model tiny --uint8-frames --label zen3

``--uint8-frames`` profiles a per-frame model the way the OpenVINO backend runs it: uint8
frames in and out, converted inside the graph (where the plugin fuses the conversions and
the global residual into neighbouring nodes); without it, the float export as it is.

Convolutions are the work; reorders, concats and element-wise operations on full-resolution
tensors are overhead that a CPU tier has to design away. Time is also summed per part of the
network (the module a node comes from: ``align`` is the in-graph motion search, ``gate`` the
accumulator's gate), as far as the plugin's fused nodes keep their names. Writes JSON +
markdown.
"""

from __future__ import annotations

import argparse
import collections
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import openvino as ov

from streamdenoise.backends.openvino_backend import _with_uint8_frames
from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models import load_model
from streamdenoise.models.macs import count_config_macs
from streamdenoise.models.onnx import export_onnx

#: A module's name in an exported node's path: ``align``, ``encs.1``, ``head_1``.
MODULE = re.compile(r"[a-z]+(?:[._]\d+)*")


def profile(model: str, size: tuple[int, int], precision: str, runs: int, frames_u8: bool) -> dict:
    net, _ = load_model(model)
    w, h = size
    m = net.config.multiple
    h, w = -(-h // m) * m, -(-w // m) * m
    frames_u8 = frames_u8 and not net.config.temporal
    core = ov.Core()
    with tempfile.TemporaryDirectory() as tmp:
        graph = core.read_model(str(export_onnx(net, Path(tmp) / "model.onnx", Path(model).stem)))
    if frames_u8:
        graph.reshape({"noisy": [1, 3, h, w], "sigma": [1, 3, 1, 1]})
        graph = _with_uint8_frames(graph)
    compiled = core.compile_model(
        graph, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERF_COUNT": "YES"}
    )
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    feed = {"noisy": x, "sigma": np.full((1, 3, 1, 1), 0.1, np.float32)}
    if frames_u8:
        feed["noisy"] = np.round(x.transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    if net.config.temporal:
        feed["prev"] = np.concatenate([x] * (net.config.state_channels // 3), 1)
    for _ in range(3):
        request.infer(feed)
    by_type: collections.Counter = collections.Counter()
    by_part: collections.Counter = collections.Counter()
    nodes: collections.Counter = collections.Counter()
    start = time.perf_counter()
    for _ in range(runs):
        request.infer(feed)
        for info in request.profiling_info:
            ms = info.real_time.total_seconds() * 1000 / runs
            by_type[info.node_type] += ms
            by_part[network_part(info.node_name)] += ms
            nodes[(info.node_name, info.node_type, info.exec_type)] += ms
    wall = (time.perf_counter() - start) / runs * 1000
    return {
        "model": Path(model).stem,
        "size": f"{size[0]}x{size[1]}",
        "precision": precision,
        "uint8_frames": frames_u8,
        "gmac": round(count_config_macs(net.config, *size) / 1e9, 2),
        "ms_per_infer": round(wall, 2),
        "ms_by_type": {k: round(v, 2) for k, v in by_type.most_common()},
        "ms_by_part": {k: round(v, 2) for k, v in by_part.most_common()},
        "slowest_nodes": [
            {"node": n, "type": t, "kernel": k, "ms": round(v, 2)}
            for (n, t, k), v in nodes.most_common(15)
        ],
    }


def network_part(node: str) -> str:
    """The module an exported node comes from: the first module path in its name
    (``/align/Conv_3`` → ``align``, ``/encs.1/…`` → ``encs``, a reorder the plugin put before
    ``/head_1/Conv`` → ``head``); nodes of the top-level forward and those the plugin made up
    (``Power_6548``) are "other"."""
    for segment in re.findall(r"/([^/]+)(?=/)", node):
        if MODULE.fullmatch(segment):
            return re.split(r"[._]", segment)[0]
    return "other"


def to_markdown(doc: dict) -> str:
    lines = [
        f"# OpenVINO CPU profile: {doc['model']} at {doc['size']} ({doc['precision']})",
        "",
        f"CPU: {cpu_description(doc['machine'])}; ONNX export of the weights"
        + (
            "; uint8 frames in and out, converted in the graph as the backend runs it; "
            if doc.get("uint8_frames")
            else "; float frames in and out; "
        )
        + f"{doc['gmac']} GMAC per frame; "
        f"{doc['ms_per_infer']} ms per inference (wall, performance counters on).",
        "",
        "| operation type | ms per frame |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in doc["ms_by_type"].items() if v >= 0.1]
    lines += ["", "| part of the network | ms per frame |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in doc["ms_by_part"].items() if v >= 0.1]
    lines += ["", "| slowest node | type | kernel | ms |", "|---|---|---|---:|"]
    lines += [
        f"| `{n['node']}` | {n['type']} | {n['kernel']} | {n['ms']:.1f} |"
        for n in doc["slowest_nodes"]
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="temporal", help="model name or weights file")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--precision", default="f32", choices=("f32", "bf16"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--uint8-frames", action="store_true", help="as the backend runs it")
    parser.add_argument("--label", default="", help="suffix of the result files' names")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    doc = profile(args.model, size, args.precision, args.runs, args.uint8_frames)
    doc["machine"] = machine_record()
    suffix = ("_u8" if doc["uint8_frames"] else "") + (f"_{args.label}" if args.label else "")
    out = args.out / f"openvino_profile_{doc['model']}_{args.precision}{suffix}"
    write_report(out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
