"""Per-frame models on OpenVINO's CPU plugin: one frame at a time on all cores, or two frames
in flight on one stream of threads each — alone, and beside an x264 encoder that takes its
share of the same cores as a pipeline's file output does.

Both ways go through the product's backend: ``process()`` (a one-stream LATENCY graph) and
``submit()`` with two frames in flight (a two-stream graph), on real 720p frames of a clip,
interleaved over rounds; the encoder is libx264 at the file outputs' preset and CRF, paced at
30 fps on the same clip's frames in a thread of this process.

    python benchmarks/frames_in_flight.py --label zen5-native
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/frames_in_flight.py --label zen5-avx2-capped
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections import deque
from pathlib import Path

import av
import numpy as np

from streamdenoise.backends import create_backend
from streamdenoise.lab.speed import machine_record, write_report
from streamdenoise.settings import default

ROOT = Path(__file__).resolve().parents[1]


def clip_frames(clip: Path, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    frames = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(width=size[0], height=size[1], format="rgb24"))
            if len(frames) == count:
                break
    return frames


def ms_per_frame(denoiser, frames: list[np.ndarray], window: int) -> float:
    """Wall ms per frame over ``frames``: ``process()`` one by one (window 1), or ``submit()``
    with at most ``window`` unfinished."""
    pending: deque = deque()
    start = time.perf_counter()
    for image in frames:
        if window == 1:
            denoiser.process(image)
            continue
        if len(pending) == window:
            pending.popleft().result()
        pending.append(denoiser.submit(image))
    for future in pending:
        future.result()
    return (time.perf_counter() - start) / len(frames) * 1000


class PacedEncoder:
    """libx264 encoding the clip's frames at 30 fps in a thread, as a file output would."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frames, self.stop, self.encoded = frames, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PacedEncoder:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join()

    def _run(self) -> None:
        height, width = self.frames[0].shape[:2]
        with av.open(os.devnull, "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"preset": default("preset"), "crf": str(default("crf"))}
            start = time.perf_counter()
            while not self.stop.is_set():
                image = self.frames[self.encoded % len(self.frames)]
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                    width, height, "yuv420p"
                )
                container.mux(stream.encode(frame))
                self.encoded += 1
                time.sleep(max(0.0, start + self.encoded / 30 - time.perf_counter()))
            container.mux(stream.encode())


def measure(model: str, precision: str, frames: list[np.ndarray], rounds: int) -> dict:
    overlapping = create_backend("openvino", model=model, precision=precision)
    height, width = frames[0].shape[:2]
    overlapping.prepare(width, height)
    window = overlapping.frames_in_flight
    ways = {"one at a time": 1, f"{window} in flight": window}
    result: dict = {"model": model, "precision": overlapping.precision, "frames_in_flight": window}
    try:
        for w in ways.values():  # compile and warm both graphs
            ms_per_frame(overlapping, frames[:4], w)
        for load in ("alone", "beside x264"):
            times: dict[str, list[float]] = {name: [] for name in ways}
            for r in range(rounds):
                order = list(ways) if r % 2 == 0 else list(ways)[::-1]
                for name in order:
                    if load == "alone":
                        times[name].append(ms_per_frame(overlapping, frames, ways[name]))
                    else:
                        with PacedEncoder(frames):
                            time.sleep(0.3)
                            times[name].append(ms_per_frame(overlapping, frames, ways[name]))
            result[load] = {
                name: {
                    "median_ms": round(statistics.median(v), 2),
                    "runs_ms": [round(x, 2) for x in v],
                }
                for name, v in times.items()
            }
    finally:
        overlapping.close()
    return result


def to_markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        f"# Frames in flight: per-frame models on OpenVINO ({doc['size']})",
        "",
        f"CPU: {m['cpu']['model']}, {m['cpu']['cores']} logical cores, flags "
        f"{', '.join(m['cpu']['flags'])}; kernel cap ONEDNN_MAX_CPU_ISA="
        f"{doc['isa_cap'] or 'unset'}; load average at start {m.get('load_avg_1m')}.",
        f"Clip `{Path(doc['clip']).name}` ({doc['frames']} frames per run, median of "
        f"{doc['rounds']} interleaved runs); encoder: libx264 {doc['encoder']} paced at 30 fps.",
        "",
        "| model | precision | load | one at a time, ms/frame | two in flight, ms/frame | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in doc["results"]:
        one_name, many_name = "one at a time", f"{row['frames_in_flight']} in flight"
        for load in ("alone", "beside x264"):
            one, many = row[load][one_name]["median_ms"], row[load][many_name]["median_ms"]
            lines.append(
                f"| {row['model']} | {row['precision']} | {load} | {one:.1f} | {many:.1f} | "
                f"{one / many:.2f}× |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clip", type=Path, default=ROOT.parent / "shared/datasets/media/clips/01_dog.mp4"
    )
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="fast@int8,fast@fp32,spatial@int8")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    frames = clip_frames(args.clip, args.frames, size)
    results = []
    for spec in args.models.split(","):
        model, _, precision = spec.partition("@")
        results.append(measure(model, precision or None, frames, args.rounds))
        print(results[-1], flush=True)
    doc = {
        "machine": machine_record(),
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "clip": str(args.clip),
        "size": args.size,
        "frames": len(frames),
        "rounds": args.rounds,
        "encoder": f"{default('preset')} CRF {default('crf')}",
        "results": results,
    }
    stem = args.out / ("frames_in_flight" + (f"_{args.label}" if args.label else ""))
    write_report(stem, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
