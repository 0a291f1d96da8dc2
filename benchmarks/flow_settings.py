"""What the dense optical flow's settings cost and buy, for the tiers that measure motion on the
host (``temporal``).

DIS (OpenCV) estimates one displacement per 8×8 patch on each level of an image pyramid,
coarse to fine, and blends overlapping patches into a dense field. Two settings set most of
its time: the finest level it searches (scale 1: half resolution, 2: a quarter; the field is
upsampled from there) and the stride between patches (how many there are). For each
(finest scale, stride) pair this measures, on the same machine and in the same run:

- ``temporal``'s milliseconds per frame through OpenVINO ``process()`` (fp32 and int8, flow,
  warp and network together, OpenCV and OpenVINO on their default threads; each stride a
  backend of its own, interleaved rounds), what a user gets;
- milliseconds per 1280×720 and 1920×1080 frame of one core (OpenCV on one thread; grey
  noisy frames of a validation video resized, median of ``--repeats``), and the warp of a
  6-channel state along the flow, which every setting pays alike;
- the warp residual of ``benchmarks/motion_search.py`` (previous clean frame onto the current
  one, motion measured from noisy frames at σ = 25, 8-bit steps, lower is better);
- the ``temporal`` model's PSNR / flicker through ``streamdenoise eval`` (torch, 8-bit AWGN
  and the suite's realistic camera noise, first ``--frames`` frames) on ``val/videos`` and the
  fast-motion ``val/videos-motion``.

    python benchmarks/flow_settings.py       # finest scale:stride 1:4,1:6,1:8,2:4,2:6
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from streamdenoise.backends import create_backend
from streamdenoise.lab.data import image_files, read_rgb
from streamdenoise.lab.quality import BackendSpec, evaluate
from streamdenoise.lab.speed import cpu_description, machine_record, write_report
from streamdenoise.models import motion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from motion_search import CROP, residuals, sequences
from tier_speed import time_interleaved

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((1280, 720), (1920, 1080))
TIMING_SEQUENCE = "val/videos-motion/davis-tennis"


def median_ms(fn, repeats: int) -> float:
    fn()
    spent = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - start)
    return round(float(np.median(spent)) * 1000, 2)


def noisy_frames(data: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """Consecutive frames of a validation video at ``size``, 8-bit, AWGN σ = 15."""
    rng = np.random.default_rng(0)
    frames = [cv2.resize(read_rgb(f), size) for f in image_files(data / TIMING_SEQUENCE)[:count]]
    return [np.clip(f + rng.normal(0, 15, f.shape), 0, 255).astype(np.uint8) for f in frames]


Setting = tuple[int, int]  # (finest scale, patch stride)


def use(setting: Setting) -> None:
    """Make the flow estimators created from now on use ``setting`` (read at creation)."""
    motion.FLOW_FINEST_SCALE, motion.FLOW_PATCH_STRIDE = setting


def label(setting: Setting) -> str:
    return f"scale {setting[0]}, stride {setting[1]}"


def tier_timing(data: Path, settings: list[Setting], seconds: float, rounds: int) -> list[dict]:
    """``temporal``'s median ms per frame through OpenVINO ``process()`` per setting,
    precision and size, every case in the same interleaved rounds."""
    rows = []
    for size in SIZES:
        frames = noisy_frames(data, size, 8)
        cases = []
        for setting in settings:
            use(setting)
            for precision in ("fp32", "int8"):
                denoiser = create_backend(
                    "openvino", model="temporal", precision=precision, device="cpu"
                )
                for frame in frames:  # warm-up; the recurrent state settles
                    denoiser.process(frame)
                cases.append(
                    {"setting": setting, "precision": precision, "denoiser": denoiser, "ms": []}
                )
        time_interleaved(cases, frames, seconds, rounds)
        for case in cases:
            case.pop("denoiser").close()
            rows.append(
                {
                    "size": f"{size[0]}x{size[1]}",
                    "setting": label(case["setting"]),
                    "precision": case["precision"],
                    "ms_per_frame_p50": round(float(np.median(case["ms"])), 2),
                    "frames": len(case["ms"]),
                }
            )
    return rows


def timing(data: Path, repeats: int) -> dict:
    """ms per frame of the flow (the current setting) and of the state's warp, per size."""
    rng = np.random.default_rng(0)
    out = {}
    for width, height in SIZES:
        grey = [motion.grey_frame(f) for f in noisy_frames(data, (width, height), 2)]
        estimator = motion.FlowEstimator()
        flow = estimator.flow(grey[0], grey[1])
        state = rng.random((1, 6, height, width), dtype=np.float32)
        out[f"{width}x{height}"] = {
            "flow_ms": median_ms(partial(estimator.flow, *grey), repeats),
            "warp_ms": median_ms(partial(motion.warp_state, state, flow), repeats),
        }
    return out


def residual(data: Path, frames: int) -> float:
    pooled = []
    for index, seq in enumerate(sequences(data)):
        clean = [
            read_rgb(f)[: CROP[0], : CROP[1]].astype(np.float32) / 255
            for f in image_files(seq)[:frames]
        ]
        pooled += residuals(clean, 25.0, {}, seed=index)["dis"]
    return round(float(np.mean(pooled)), 3)


def quality(data: Path, frames: int) -> list[dict]:
    spec = BackendSpec.parse("temporal")
    rows = []
    for noise, sigmas in (("awgn", [10.0, 25.0, 50.0]), ("realistic", [25.0])):
        for folder in ("val/videos", "val/videos-motion"):
            report = evaluate([data / folder], sigmas, [spec], noise=noise, max_frames=frames)
            rows += [
                {k: r[k] for k in ("dataset", "noise", "sigma", "psnr", "flicker")}
                for r in report["results"]
            ]
    return rows


def to_markdown(doc: dict) -> str:
    entries = doc["settings"]
    sizes = list(entries[0]["timing"])
    lines = [
        "# Dense optical flow: DIS finest scale and patch stride, cost and quality",
        "",
        f"Machine: {cpu_description(doc['machine'])}. One core (OpenCV on one thread). "
        f"Residual: {doc['residual_frames']} frames per validation sequence, σ = 25, 8-bit "
        f"steps. PSNR: `temporal` (torch), first {doc['frames']} frames, 8-bit protocol; the "
        f"shipped setting is {doc['shipped']}. Finest scale 1 searches down to half "
        "resolution, 2 to a quarter.",
        "",
        "| setting | "
        + " | ".join(f"flow ms {s}" for s in sizes)
        + " | warp residual | "
        + " | ".join(_quality_label(r) for r in entries[0]["quality"])
        + " |",
        "|---|" + "---:|" * (len(sizes) + 1 + len(entries[0]["quality"])),
    ]
    for entry in entries:
        cells = [f"{entry['timing'][s]['flow_ms']:.1f}" for s in sizes]
        cells.append(f"{entry['residual']:.2f}")
        cells += [f"{r['psnr']:.2f}" for r in entry["quality"]]
        lines.append(f"| {entry['setting']} | " + " | ".join(cells) + " |")
    warp = ", ".join(f"{s}: {entries[0]['timing'][s]['warp_ms']:.1f} ms" for s in sizes)
    flicker = "; ".join(
        f"{e['setting']}: "
        + " / ".join(f"{r['flicker']:+.2f}" for r in e["quality"] if r["noise"] == "awgn")
        for e in entries
    )
    lines += [
        "",
        "`temporal` through OpenVINO `process()` (flow, warp and network; default threads), "
        "median ms per frame:",
        "",
        "| size | precision | " + " | ".join(e["setting"] for e in entries) + " |",
        "|---|---|" + "---:|" * len(entries),
    ]
    for size in sizes:
        for precision in ("fp32", "int8"):
            ms = {
                r["setting"]: r["ms_per_frame_p50"]
                for r in doc["process"]
                if r["size"] == size and r["precision"] == precision
            }
            lines.append(
                f"| {size} | {precision} | "
                + " | ".join(f"{ms[e['setting']]:.1f}" for e in entries)
                + " |"
            )
    lines += [
        "",
        f"The warp of the 6-channel state along the flow, the same for every setting: {warp}.",
        f"Flicker (AWGN columns, lower is steadier): {flicker}.",
    ]
    return "\n".join(lines) + "\n"


def _quality_label(row: dict) -> str:
    where = "motion" if row["dataset"].endswith("motion") else "videos"
    level = "camera" if row["noise"] == "realistic" else f"σ{row['sigma']:g}"
    return f"{where} {level}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument(
        "--settings", default="1:4,1:6,1:8,2:4,2:6", help="finest scale:patch stride, comma list"
    )
    parser.add_argument("--frames", type=int, default=20, help="per sequence, for PSNR")
    parser.add_argument("--residual-frames", type=int, default=6, help="per sequence")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=6.0, help="per process() case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/flow_settings")
    args = parser.parse_args()
    shipped = (motion.FLOW_FINEST_SCALE, motion.FLOW_PATCH_STRIDE)
    settings = [tuple(int(v) for v in pair.split(":")) for pair in args.settings.split(",")]
    # all timing first, on a quiet machine, before any evaluation
    process = tier_timing(args.data, settings, args.seconds, args.rounds)
    cv2.setNumThreads(1)
    entries = []
    for setting in settings:
        use(setting)
        entries.append({"setting": label(setting), "timing": timing(args.data, args.repeats)})
    for setting, entry in zip(settings, entries, strict=True):
        use(setting)
        entry["residual"] = residual(args.data, args.residual_frames)
        entry["quality"] = quality(args.data, args.frames)
    use(shipped)
    doc = {
        "shipped": label(shipped),
        "frames": args.frames,
        "residual_frames": args.residual_frames,
        "settings": entries,
        "process": process,
        "machine": machine_record(),
    }
    write_report(args.out, doc, to_markdown(doc))


if __name__ == "__main__":
    main()
