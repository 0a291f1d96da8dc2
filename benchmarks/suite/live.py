"""Section 2: a live 30 fps camera at 720p with the ``latest`` policy, per contender.

The camera is the project's real GStreamer RTSP test server (``tests/rtsp_server.py``, run
by the system Python) on 127.0.0.1; where GStreamer is missing, a file source paced at its
native rate (``realtime=True``) stands in, and the report says which one was used.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamdenoise.lab.speed import rotated
from streamdenoise.options import SinkOptions, SourceOptions
from suite.contenders import Contender
from suite.runner import RunResult, run_pipeline
from suite.stats import pool, summarize, thin

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from rtsp_control import RtspServer, gst_rtsp_missing


@dataclass
class LivePlan:
    size: tuple[int, int]
    fps: int
    seconds: float  # per contender, over all rounds
    rounds: int


@contextmanager
def rtsp_camera(workdir: Path, size: tuple[int, int], fps: int) -> Iterator[str | None]:
    """Yield the URL of the live RTSP test camera, or None when GStreamer is missing here."""
    if gst_rtsp_missing():
        yield None
        return
    server = RtspServer(workdir / "rtsp", size=f"{size[0]}x{size[1]}", fps=fps)
    server.start()
    try:
        yield server.url()
    finally:
        server.stop()


def run(
    contenders: list[Contender],
    fallback_clip: Path,
    plan: LivePlan,
    workdir: Path,
    log: Callable[[str], None],
) -> dict:
    runs: dict[str, list[RunResult]] = {}
    with rtsp_camera(workdir, plan.size, plan.fps) as url:
        if url:
            source, kind = url, "RTSP test server (GStreamer x264, 127.0.0.1)"
            options = SourceOptions(rtsp_transport="tcp")
        else:
            source, kind = str(fallback_clip), "paced file source (realtime=True)"
            options = SourceOptions(realtime=True, loop=True)
        for rnd in range(plan.rounds):
            for c in rotated(contenders, rnd):
                log(f"live round {rnd + 1}/{plan.rounds} {c.label}")
                runs.setdefault(c.label, []).append(
                    run_pipeline(
                        c,
                        source,
                        [str(workdir / "live_out.mp4")],
                        policy="latest",
                        source_options=options,
                        sink_options=SinkOptions(overwrite=True),  # a scratch file, every round
                        seconds=plan.seconds / plan.rounds,
                    )
                )
    results = [_summarize(c, runs[c.label]) for c in contenders]
    return {
        "source": kind,
        "size": f"{plan.size[0]}x{plan.size[1]}",
        "fps": plan.fps,
        "policy": "latest",
        "results": results,
    }


def _summarize(c: Contender, runs: list[RunResult]) -> dict:
    frames_in = sum(r.report["frames_in"] for r in runs)
    frames_out = sum(r.report["frames_out"] for r in runs)
    drops = sum(r.report.get("drops", 0) for r in runs)
    seconds = sum(r.report["duration_s"] for r in runs)
    e2e = pool([r.samples_ms for r in runs]).get("e2e", [])
    return {
        **c.to_json(),
        "contender": c.label,
        "seconds": round(seconds, 2),
        "frames_in": frames_in,
        "frames_out": frames_out,
        "drops": drops,
        "drop_rate": round(drops / frames_in, 4) if frames_in else None,
        "fps_in": round(frames_in / seconds, 2) if seconds else None,
        "fps_out": round(frames_out / seconds, 2) if seconds else None,
        "latency_ms": summarize(e2e),
        "latency_samples_ms": thin(e2e),
        "cpu_percent": round(100 * sum(r.cpu_s for r in runs) / sum(r.wall_s for r in runs), 1),
        "note": "",
    }


def protocol(plan: LivePlan) -> str:
    return (
        f"A live {plan.size[0]}x{plan.size[1]} camera at {plan.fps} fps (the RTSP test server "
        "when GStreamer is present, else a paced file), queue policy latest (drop oldest), "
        f"output an x264 file; {plan.seconds:g} s per contender in {plan.rounds} interleaved "
        "round(s). Latency = frame received by the source → written by the sink (the camera's "
        "own encode and network delay are not included). Dropped % = frames dropped by the "
        "queues / frames received."
    )
