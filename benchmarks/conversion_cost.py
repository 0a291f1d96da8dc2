"""What each pixel-format conversion costs per frame, beside decode, the network's own
pre/post-processing and x264 encode, so the cost of working in RGB can be weighed.

Decoders hand out YUV 4:2:0 and x264 takes it; the pipeline converts every frame to RGB
for the network and back for the encoder. This times each step on a real H.264 clip, in
one process, interleaved over rounds, and writes JSON + markdown under benchmarks/results/.
The encoder is also timed per x264 preset at the file outputs' CRF, with the CPU time of
all its threads (what it takes from the denoiser beside it) and the bitrate it produces.

    python benchmarks/conversion_cost.py --clip ../shared/datasets/media/clips/01_dog.mp4
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from streamdenoise.lab.speed import machine_record, write_report
from streamdenoise.settings import default

#: x264 presets compared for file outputs, at the CRF file outputs use by default.
PRESETS = ("ultrafast", "superfast", "veryfast")
FILE_CRF = default("crf")


def decoded_frames(clip: Path, count: int) -> list[av.VideoFrame]:
    with av.open(str(clip)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def time_per_frame(step: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        step(i)
    return (time.perf_counter() - start) / count * 1000


def measure(clip: Path, frames: int, rounds: int) -> dict:
    source = decoded_frames(clip, frames)
    width, height = source[0].width, source[0].height
    rgb = [f.to_ndarray(format="rgb24") for f in source]
    yuv = [f.to_ndarray(format="yuv420p") for f in source]
    as_float = [np.ascontiguousarray(r.transpose(2, 0, 1)[None], np.float32) / 255 for r in rgb]

    def decode_all(fmt: str | None) -> Callable[[int], object]:
        def run(_: int) -> None:
            with av.open(str(clip)) as container:
                for n, frame in enumerate(container.decode(video=0)):
                    if fmt:
                        frame.to_ndarray(format=fmt)
                    if n + 1 == frames:
                        break

        return run

    encoded_bytes: dict[str, int] = {}

    def encode(convert: bool, preset: str = "ultrafast", crf: int | None = None) -> Callable:
        def run(_: int) -> None:
            container = av.open("/dev/null", "w", format="mp4")
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = (
                {"preset": preset, "crf": str(crf)}
                if crf is not None
                else {"preset": preset, "tune": "zerolatency"}
            )
            size = 0
            for i in range(frames):
                if convert:
                    frame = av.VideoFrame.from_ndarray(rgb[i], format="rgb24").reformat(
                        width, height, "yuv420p"
                    )
                else:
                    frame = av.VideoFrame.from_ndarray(yuv[i], format="yuv420p")
                packets = stream.encode(frame)
                size += sum(p.size for p in packets)
                container.mux(packets)
            packets = stream.encode()
            size += sum(p.size for p in packets)
            container.mux(packets)
            container.close()
            if crf is not None:
                encoded_bytes[preset] = size

        return run

    steps: dict[str, Callable[[int], object]] = {
        "decode (yuv420p, no conversion)": decode_all(None),
        "decode + to rgb24 (swscale)": decode_all("rgb24"),
        "yuv420p -> rgb24 (swscale)": lambda i: source[i].to_ndarray(format="rgb24"),
        "yuv420p -> rgb24 (OpenCV)": lambda i: cv2.cvtColor(
            yuv[i].reshape(-1, width), cv2.COLOR_YUV2RGB_I420
        ),
        "rgb24 -> yuv420p (swscale)": lambda i: av.VideoFrame.from_ndarray(
            rgb[i], format="rgb24"
        ).reformat(width, height, "yuv420p"),
        "rgb24 -> yuv420p (OpenCV)": lambda i: cv2.cvtColor(rgb[i], cv2.COLOR_RGB2YUV_I420),
        "uint8 HWC -> float32 NCHW": lambda i: (
            np.ascontiguousarray(rgb[i].transpose(2, 0, 1)[None], np.float32) / 255
        ),
        "float32 NCHW -> uint8 HWC": lambda i: (
            np.clip(as_float[i][0].transpose(1, 2, 0), 0, 1) * 255 + 0.5
        ).astype(np.uint8),
        "encode x264 ultrafast from yuv420p": encode(False),
        "encode x264 ultrafast from rgb24": encode(True),
    }
    preset_steps = {
        f"encode x264 {preset} CRF {FILE_CRF} from yuv420p": encode(False, preset, FILE_CRF)
        for preset in PRESETS
    }
    steps |= preset_steps
    whole_clip = {name for name in steps if name.startswith(("decode", "encode"))}
    timings: dict[str, list[float]] = {name: [] for name in steps}
    cpu: dict[str, list[float]] = {name: [] for name in preset_steps}
    for r in range(rounds):
        names = list(steps)
        names = names[r % len(names) :] + names[: r % len(names)]
        for name in names:
            if name in whole_clip:
                start, start_cpu = time.perf_counter(), time.process_time()
                steps[name](0)
                timings[name].append((time.perf_counter() - start) / frames * 1000)
                if name in cpu:
                    cpu[name].append((time.process_time() - start_cpu) / frames * 1000)
            else:
                timings[name].append(time_per_frame(steps[name], frames))
    seconds = frames / 30  # the encoder's rate
    return {
        "clip": str(clip),
        "size": f"{width}x{height}",
        "frames": frames,
        "rounds": rounds,
        "ms_per_frame": {name: round(statistics.median(v), 3) for name, v in timings.items()},
        "encoder_presets": {
            preset: {
                "crf": FILE_CRF,
                "ms_per_frame": round(statistics.median(timings[name]), 3),
                "cpu_ms_per_frame": round(statistics.median(cpu[name]), 3),
                "mbit_per_s_at_30fps": round(encoded_bytes[preset] * 8 / seconds / 1e6, 3),
            }
            for preset, name in zip(PRESETS, preset_steps, strict=True)
        },
    }


def to_markdown(doc: dict) -> str:
    budget = 1000 / 30
    lines = [
        f"# Pixel-format conversion cost per frame ({doc['size']})",
        "",
        f"Machine: {doc['machine'].get('cpu', '?')}; clip `{Path(doc['clip']).name}`, "
        f"{doc['frames']} frames, median of {doc['rounds']} interleaved rounds, one thread "
        "of Python (FFmpeg may use its own threads for decode/encode).",
        "",
        "| step | ms per frame | share of a 30 fps frame |",
        "|---|---:|---:|",
    ]
    for name, ms in doc["ms_per_frame"].items():
        lines.append(f"| {name} | {ms:.2f} | {ms / budget:.1%} |")
    lines += [
        "",
        "x264 presets for file outputs (CRF as the default; CPU = all encoder threads, what "
        "it takes from the denoiser on the same cores):",
        "",
        "| preset | wall ms per frame | CPU ms per frame | Mbit/s at 30 fps |",
        "|---|---:|---:|---:|",
    ]
    for preset, row in doc["encoder_presets"].items():
        lines.append(
            f"| {preset} | {row['ms_per_frame']:.2f} | {row['cpu_ms_per_frame']:.2f} | "
            f"{row['mbit_per_s_at_30fps']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clip", type=Path, default=Path("../shared/datasets/media/clips/01_dog.mp4")
    )
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/conversion_cost"))
    args = parser.parse_args()
    doc = measure(args.clip, args.frames, args.rounds) | {"machine": machine_record()}
    write_report(args.out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
