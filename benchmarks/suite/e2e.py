"""Section 1: decode → denoise → x264 encode on a file, per contender and frame size.

Contenders take turns (``rounds`` passes over all of them, the order rotated each pass) so
slow drift of a shared machine is spread over everyone. Each contender gets a frame budget
from a one-frame speed probe: a filter that needs seconds per 1080p frame runs a few frames
and its measured fps is still reported, marked as capped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamdenoise.lab.speed import rotated
from streamdenoise.options import SinkOptions, SourceOptions
from suite.clips import read_frames
from suite.contenders import Contender
from suite.runner import RunResult, run_pipeline
from suite.stats import pool, summarize

E2E_STAGES = ("capture", "queue_wait", "denoise", "sink_queue_wait", "sink_write")


@dataclass
class E2EPlan:
    sizes: list[tuple[int, int]]
    max_frames: int  # per contender and size, over all rounds
    min_frames: int
    budget_s: float  # target denoise time per contender and size
    rounds: int


def size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def probe_fps(contender: Contender, frame) -> float:
    """Denoise-only speed: the best of two timed frames after one warm-up frame."""
    denoiser = contender.create()
    try:
        denoiser.prepare(frame.shape[1], frame.shape[0])
        denoiser.process(frame)
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            denoiser.process(frame)
            best = min(best, time.perf_counter() - start)
        return 1.0 / max(best, 1e-6)
    finally:
        denoiser.close()


def frame_budget(plan: E2EPlan, fps: float) -> int:
    return int(min(plan.max_frames, max(plan.min_frames, fps * plan.budget_s)))


def run(
    contenders: list[Contender],
    clips: dict[tuple[int, int], Path],
    plan: E2EPlan,
    workdir: Path,
    log: Callable[[str], None],
) -> dict:
    budgets: dict[tuple[str, tuple[int, int]], tuple[int, float]] = {}
    for size, clip in clips.items():
        frame = next(read_frames(clip, size, 1))
        for c in contenders:
            fps = probe_fps(c, frame)
            budgets[(c.label, size)] = (frame_budget(plan, fps), fps)
    runs: dict[tuple[str, tuple[int, int]], list[RunResult]] = {}
    for rnd in range(plan.rounds):
        for size, clip in clips.items():
            for c in rotated(contenders, rnd):
                total, _ = budgets[(c.label, size)]
                frames = -(-total // plan.rounds)
                log(
                    f"e2e round {rnd + 1}/{plan.rounds} {size_name(size)} {c.label}: "
                    f"{frames} frames"
                )
                result = run_pipeline(
                    c,
                    str(clip),
                    [str(workdir / "e2e_out.mp4")],
                    policy="lossless",
                    source_options=SourceOptions(),
                    sink_options=SinkOptions(overwrite=True),  # a scratch file, every round
                    max_frames=frames,
                )
                runs.setdefault((c.label, size), []).append(result)
    results = []
    for size in clips:
        for c in contenders:
            results.append(
                _summarize(c, size, runs[(c.label, size)], budgets[(c.label, size)], plan)
            )
    return {"results": results}


def _summarize(
    c: Contender,
    size: tuple[int, int],
    runs: list[RunResult],
    budget: tuple[int, float],
    plan: E2EPlan,
) -> dict:
    frames = sum(r.report["frames_out"] for r in runs)
    seconds = sum(r.report["duration_s"] for r in runs)
    samples = pool([r.samples_ms for r in runs])
    wall, cpu = sum(r.wall_s for r in runs), sum(r.cpu_s for r in runs)
    total, probe = budget
    note = f"capped: probe {probe:.1f} fps" if total < plan.max_frames else ""
    return {
        **c.to_json(),
        "contender": c.label,
        "size": size_name(size),
        "frames": frames,
        "rounds": len(runs),
        "fps": round(frames / seconds, 2) if seconds else None,
        "latency_ms": summarize(samples.get("e2e", [])),
        "stages_ms": {s: summarize(samples.get(s, [])) for s in E2E_STAGES},
        "cpu_percent": round(100 * cpu / wall, 1) if wall else None,
        "drops": sum(r.report.get("drops", 0) for r in runs),
        "probe_fps": round(probe, 2),
        "note": note,
    }


def protocol(plan: E2EPlan) -> str:
    return (
        "Input: a real H.264 camera clip (shared/datasets/media/clips/01_dog.mp4) resized to "
        "each size, AWGN σ=15 added by the project's noise synthesis, re-encoded with x264; "
        "decoded by the file source, denoised, encoded by the file sink (libx264, default "
        f"options), queue policy lossless. Up to {plan.max_frames} frames per contender and "
        f"size in {plan.rounds} interleaved rounds; slow contenders get about "
        f"{plan.budget_s:g} s of frames (at least {plan.min_frames}) and are marked capped. "
        "fps = frames out / time from first capture to last write (warm-up included); "
        "latency = capture → written; CPU % = process + child CPU time / wall time "
        "(100 % = one core)."
    )
