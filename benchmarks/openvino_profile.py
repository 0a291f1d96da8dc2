"""Where a model's time goes in OpenVINO's CPU plugin: per operation type and the slowest
nodes, from the plugin's own performance counters, for one frame size.

    python benchmarks/openvino_profile.py --model temporal --size 1280x720 --precision f32

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

from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models import load_model
from streamdenoise.models.macs import count_config_macs
from streamdenoise.models.onnx import export_onnx

#: A module's name in an exported node's path: ``align``, ``encs.1``, ``head_1``.
MODULE = re.compile(r"[a-z]+(?:[._]\d+)*")


def profile(model: str, size: tuple[int, int], precision: str, runs: int) -> dict:
    net, _ = load_model(model)
    w, h = size
    m = net.config.multiple
    h, w = -(-h // m) * m, -(-w // m) * m
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(net, Path(tmp) / "model.onnx", Path(model).stem)
        compiled = ov.Core().compile_model(
            str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERF_COUNT": "YES"}
        )
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    feed = {"noisy": x, "sigma": np.full((1, 3, 1, 1), 0.1, np.float32)}
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
        f"CPU: {cpu_description(doc['machine'])}; ONNX export of the weights; "
        f"{doc['gmac']} GMAC per frame; "
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
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    doc = profile(args.model, size, args.precision, args.runs) | {"machine": machine_record()}
    out = args.out / f"openvino_profile_{doc['model']}_{args.precision}"
    write_report(out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
