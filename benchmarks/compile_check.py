"""Model-only speed of each tier in torch eager vs ``torch.compile`` (inductor, and inductor
with CUDA graphs), per stream and batched, with the same inputs in one run.

TensorRT cannot be installed everywhere; ``torch.compile`` needs nothing beyond torch and
fuses the same element-wise work. Run on a CUDA machine (fp16), or on a CPU for a smoke check
(fp32, small sizes). Writes JSON + markdown.

    python benchmarks/compile_check.py --models small,temporal --sizes 1920x1080 --batch 1,8
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from streamdenoise.lab.speed import machine_record, write_report
from streamdenoise.models import load_model
from streamdenoise.models.nets import initial_state

MODES = {
    "eager": None,
    "inductor": {"mode": "default"},
    "inductor + CUDA graphs": {"mode": "reduce-overhead"},
}


def time_calls(fn, args, seconds: float, sync) -> float:
    """Median milliseconds per call over ``seconds`` after a warm-up."""
    for _ in range(3):
        fn(*args)
    sync()
    samples, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        fn(*args)
        sync()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(model: str, size: tuple[int, int], batch: int, seconds: float, device: str) -> list:
    net, _ = load_model(model)
    dtype = torch.float16 if device == "cuda" else torch.float32
    net = net.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
    w, h = size
    m = net.config.multiple
    h, w = -(-h // m) * m, -(-w // m) * m
    noisy = torch.rand(batch, 3, h, w, device=device, dtype=dtype)
    sigma = torch.full((batch, 3, 1, 1), 0.1, device=device, dtype=dtype)
    args = (noisy, sigma)
    if net.config.temporal:
        args = (*args, initial_state(noisy, net.config.state_channels))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = []
    for mode, options in MODES.items():
        if options and options["mode"] == "reduce-overhead" and device != "cuda":
            continue
        fn = net if options is None else torch.compile(net, **options, dynamic=False)
        with torch.inference_mode():
            ms = time_calls(fn, args, seconds, sync)
        rows.append(
            {
                "model": model,
                "size": f"{size[0]}x{size[1]}",
                "batch": batch,
                "mode": mode,
                "ms_per_call": round(ms, 3),
                "fps_per_stream": round(1000 * batch / ms / batch, 1),
                "frames_per_s": round(1000 * batch / ms, 1),
            }
        )
        print(rows[-1], flush=True)
    return rows


def to_markdown(doc: dict) -> str:
    lines = [
        f"# torch eager vs torch.compile ({doc['device']}, {doc['dtype']})",
        "",
        f"Machine: {doc['machine']}",
        "",
        "| model | size | batch | mode | ms per call | frames/s | × eager |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    eager = {
        (r["model"], r["size"], r["batch"]): r["ms_per_call"]
        for r in doc["rows"]
        if r["mode"] == "eager"
    }
    for r in doc["rows"]:
        ratio = eager[(r["model"], r["size"], r["batch"])] / r["ms_per_call"]
        lines.append(
            f"| {r['model']} | {r['size']} | {r['batch']} | {r['mode']} | "
            f"{r['ms_per_call']:.2f} | {r['frames_per_s']:.0f} | {ratio:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="small,temporal")
    parser.add_argument("--sizes", default="1920x1080")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu/compile"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for model in args.models.split(","):
        for text in args.sizes.split(","):
            w, h = (int(v) for v in text.split("x"))
            for batch in (int(b) for b in args.batch.split(",")):
                rows += measure(model, (w, h), batch, args.seconds, device)
    doc = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "dtype": "fp16" if device == "cuda" else "fp32",
        "machine": machine_record(),
        "rows": rows,
    }
    write_report(args.out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
