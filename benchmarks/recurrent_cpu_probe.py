"""What recurrence with its motion inside the graph would cost a CPU tier, before training one:
``nano`` (per frame, entering at quarter resolution) against the same network with a
recurrent state kept at quarter resolution in feature space, random weights (speed does not
depend on the values), both exported to ONNX and timed through OpenVINO in interleaved rounds.

    python benchmarks/recurrent_cpu_probe.py --label xeon-amx

The recurrent variants keep, per frame, the last decoder features (24 channels) and a grey
copy of the frame at 1/4 resolution. The grey copies are matched by the in-graph cost volume
of :mod:`streamdenoise.models.align` (its one-hot shift convolutions and softmax expectation)
at 1/8 and then 1/4 resolution — ±32 and then ±8 full-resolution pixels — the state is
moved along the flow by GridSample and mixed into the current frame's stem features by a
learned per-pixel gate (a 1×1 convolution). ``+state`` is the same without the motion search
(the state used where it lies): what the recurrence costs apart from the search. Each runs
with the state as a graph input and output (as the shipped recurrent tiers run), and as
OpenVINO state (``MakeStateful``: ReadValue/Assign keep it inside the plugin, in its own
layout and precision, with no copy in or out). Writes JSON + markdown under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from streamdenoise.lab.speed import machine_record
from streamdenoise.models import align, load_model
from streamdenoise.models.macs import count_module_macs

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 24  # nano's quarter-resolution width


class QuarterSearch(nn.Module):
    """Flow at 1/4 resolution between two quarter-resolution grey images: ±4 px at 1/8
    (±32 full-resolution px), then ±2 px at 1/4 around it (``align``'s matching)."""

    def __init__(self) -> None:
        super().__init__()
        self.aligner = align.CostVolumeAligner("coarse")
        self.aligner.stages = ((2, 4, 3), (1, 2, 3))  # factors relative to the 1/4 grid

    def forward(self, cur: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return self.aligner.grey_flow(cur, past)


class RecurrentNano(nn.Module):
    """``forward(noisy, sigma, state) -> (image, state)``; state (N, 25, H/4, W/4)."""

    def __init__(self, nano: nn.Module, search: bool) -> None:
        super().__init__()
        self.nano = nano
        self.search = QuarterSearch() if search else None
        self.gate = nn.Conv2d(2 * FEATURES, FEATURES, 1)
        self.register_buffer("grey", torch.tensor(align.GREY_WEIGHTS).view(1, 3, 1, 1))

    def forward(self, noisy, sigma, state):
        n = self.nano
        features = F.relu(n.head(noisy) + n.sigma_bias(sigma))
        grey = F.avg_pool2d(F.conv2d(noisy, self.grey), 4)
        past = state
        if self.search is not None:
            past = align.warp(state, self.search(grey, state[:, FEATURES:]))
        past = past[:, :FEATURES]
        weight = torch.sigmoid(self.gate(torch.cat([features, past], 1)))
        y = n.unet(features + weight * (past - features))
        return F.pixel_shuffle(n.tail(y), 4), torch.cat([y, grey], 1)


class PerFrame(nn.Module):
    def __init__(self, nano: nn.Module) -> None:
        super().__init__()
        self.nano = nano

    def forward(self, noisy, sigma):
        return self.nano(noisy, sigma)


def conv_macs(model: nn.Module, inputs: tuple) -> int:
    """Multiply-accumulates of the model's conv modules, plus its motion search's."""
    total = count_module_macs(model, inputs)
    search = getattr(model, "search", None)
    if search is not None:
        height, width = inputs[0].shape[-2:]
        total += search.aligner.macs(height // 4, width // 4)
    return total


def state_names(count: int) -> list[str]:
    """Graph names of ``count`` state tensors: state, state1, …"""
    return ["state" + (str(i) if i else "") for i in range(count)]


def export(model: nn.Module, inputs: tuple, path: Path) -> Path:
    """Inputs (noisy, sigma, *state) → outputs (image, *next_state)."""
    states = state_names(len(inputs) - 2)
    torch.onnx.export(model.eval(), inputs, str(path), opset_version=17, dynamo=False,
                      input_names=["noisy", "sigma", *states],
                      output_names=["image", *(f"next_{s}" for s in states)])  # fmt: skip
    return path


def variants(core, path: Path, inputs: tuple) -> dict:
    """(how the state is kept) -> (OpenVINO model, the inputs it is fed)."""
    import openvino.passes as ov_passes

    feeds = [i.numpy() for i in inputs]
    if len(inputs) < 3:
        return {"": (core.read_model(str(path)), feeds)}
    stateful = core.read_model(str(path))
    manager = ov_passes.Manager()
    pairs = {name: f"next_{name}" for name in state_names(len(inputs) - 2)}
    manager.register_pass(ov_passes.MakeStateful(pairs))
    manager.run_passes(stateful)
    return {
        "state in/out": (core.read_model(str(path)), feeds),
        "OpenVINO state": (stateful, feeds[:2]),
    }


def time_models(models: dict, precisions: list[str], rounds: int, frames: int) -> dict:
    """{(name, how the state is kept, precision): [ms per frame per round]} for ``models``
    ({name: (module, inputs)}), each exported and compiled by OpenVINO's CPU plugin, timed in
    interleaved rounds: a noisy neighbour hits every model alike."""
    import openvino as ov

    core, work = ov.Core(), Path(tempfile.mkdtemp(prefix="recurrent_probe_"))
    compiled = {}
    for name, (model, inputs) in models.items():
        path = export(model, inputs, work / f"{name.replace(' ', '_')}.onnx")
        for kept, (ov_model, feeds) in variants(core, path, inputs).items():
            for precision in precisions:
                config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
                compiled[name, kept, precision] = (
                    core.compile_model(ov_model, "CPU", config),
                    feeds,
                )
    times: dict = {key: [] for key in compiled}
    for _ in range(rounds):
        for key, (model, feeds) in compiled.items():
            request = model.create_infer_request()
            for _ in range(3):
                request.infer(feeds)
            started = time.perf_counter()
            for _ in range(frames):
                request.infer(feeds)
            times[key].append((time.perf_counter() - started) * 1000 / frames)
    return times


def relative_rows(times: dict, gmac: dict, base: str) -> list[dict]:
    """One row per timed case of :func:`time_models`: median ms per frame and its ratio to
    model ``base``'s at the same precision (``vs_BASE``)."""
    rows = []
    for (name, kept, precision), values in times.items():
        ms = statistics.median(values)
        reference = statistics.median(times[base, "", precision])
        rows.append({"model": name, "state": kept, "precision": precision,
                     "gmac_720p": round(gmac[name], 3), "ms_per_frame": round(ms, 2),
                     f"vs_{base}": round(ms / reference, 3)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--precisions", default="f32,bf16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=20, help="timed frames per round")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    nano = load_model("nano")[0].eval()
    noisy, sigma = torch.rand(1, 3, height, width), torch.full((1, 3, 1, 1), 0.1)
    state = torch.rand(1, FEATURES + 1, height // 4, width // 4)
    models = {
        "nano": (PerFrame(nano), (noisy, sigma)),
        "nano +state": (RecurrentNano(nano, search=False), (noisy, sigma, state)),
        "nano +state +search": (RecurrentNano(nano, search=True), (noisy, sigma, state)),
    }
    gmac = {name: conv_macs(model, inputs) / 1e9 for name, (model, inputs) in models.items()}
    times = time_models(models, args.precisions.split(","), args.rounds, args.frames)
    rows = relative_rows(times, gmac, "nano")
    doc = {"label": args.label, "size": args.size, "machine": machine_record(), "rows": rows,
           "rounds": args.rounds, "frames_per_round": args.frames}  # fmt: skip
    name = "recurrent_cpu_probe" + (f"_{args.label}" if args.label else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# Recurrence at quarter resolution against `nano`, OpenVINO CPU ({args.label})",
        "",
        f"{doc['machine']['cpu']['model']}, {doc['machine']['cpu']['cores']} cores; "
        f"{args.size}, float input, median of {args.rounds} interleaved rounds of "
        f"{args.frames} frames; random weights (`benchmarks/recurrent_cpu_probe.py`).",
        "",
        "| model | state kept as | precision | GMAC | ms/frame | × nano |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['state'] or '-'} | {r['precision']} | {r['gmac_720p']} | "
        f"{r['ms_per_frame']} | {r['vs_nano']} |"
        for r in rows
    ]
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
