"""Soak test: live 720p30 RTSP through the default denoiser for N minutes.

Answers the two questions long-running surveillance users ask: does memory grow, and does
latency creep? A real GStreamer RTSP camera (tests/rtsp_server.py) feeds the pipeline, which
denoises and pushes the result back to the server's RECORD mount (a realistic restream).
Every ``--sample-s`` seconds it records the process RSS and the e2e p99 of the frames
written since the previous sample.

Writes ``benchmarks/results/soak_rtsp.json`` and ``soak_rtsp.png``.

    .venv/bin/python benchmarks/soak_rtsp.py [--minutes 10] [--size 1280x720] [--fps 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from rtsp_control import RtspServer, gst_rtsp_missing  # noqa: E402

from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.metrics import percentile  # noqa: E402
from streamdenoise.options import SinkOptions, SourceOptions  # noqa: E402
from streamdenoise.pipeline import Pipeline, PipelineConfig  # noqa: E402
from streamdenoise.runtime import choose_backend  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--backend", help="default: the trained model, else the fallback")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args()


def sample(pipeline: Pipeline, process: psutil.Process, seen: int, started: float) -> dict:
    series = pipeline.metrics.latency["e2e"]
    new = series.count - seen
    p99 = percentile(series.last(new).tolist(), 99) * 1000 if new > 0 else None
    snap = pipeline.snapshot()
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss_mb": round(process.memory_info().rss / 2**20, 1),
        "e2e_p99_ms": None if p99 is None else round(p99, 1),
        "sink_writes": new,
        "fps_out": round(snap["fps_out"], 2),
        "drops": snap["drops"],
        "source_state": snap.get("source_state"),
    }


def summarize(samples: list[dict], warmup_s: float) -> dict:
    warm = [s for s in samples if s["t_s"] >= warmup_s] or samples
    rss_start, rss_end = warm[0]["rss_mb"], warm[-1]["rss_mb"]
    last_t = samples[-1]["t_s"]

    def p99_between(lo: float, hi: float) -> float | None:
        values = [s["e2e_p99_ms"] for s in samples if lo <= s["t_s"] < hi and s["e2e_p99_ms"]]
        return round(float(np.median(values)), 1) if values else None

    return {
        "rss_after_warmup_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_growth_after_warmup_pct": round((rss_end - rss_start) / rss_start * 100, 2),
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "e2e_p99_first_minute_ms": p99_between(0, 60),
        "e2e_p99_last_minute_ms": p99_between(last_t - 60, last_t + 1),
        "e2e_p99_after_warmup_max_ms": max((s["e2e_p99_ms"] or 0) for s in warm),
    }


def plot(samples: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, (rss_ax, lat_ax) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    rss_ax.plot(t, [s["rss_mb"] for s in samples], color="tab:blue")
    rss_ax.set_ylabel("RSS (MiB)")
    rss_ax.set_ylim(bottom=0)
    lat_ax.plot(t, [s["e2e_p99_ms"] for s in samples], color="tab:red")
    lat_ax.set_ylabel("e2e p99 per sample (ms)")
    lat_ax.set_ylim(bottom=0)
    lat_ax.set_xlabel("minutes")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    args = parse_args()
    reason = gst_rtsp_missing()
    if reason:
        print(f"soak_rtsp: cannot start the RTSP server: {reason}", file=sys.stderr)
        return 1
    backend, model = choose_backend(args.backend or "auto")
    workdir = Path(tempfile.mkdtemp(prefix="soak_rtsp_"))
    server = RtspServer(workdir, size=args.size, fps=args.fps)
    server.start()
    config = PipelineConfig(
        source=server.url(),
        outputs=["null", server.url("/push")],
        backend=backend,
        model=model,
        status=False,
        source_options=SourceOptions(timeout_s=10),
        sink_options=SinkOptions(bitrate=4_000_000),
    )
    pipeline = Pipeline(config)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(report=pipeline.run()), daemon=True)
    process = psutil.Process()
    started = time.monotonic()
    runner.start()
    samples: list[dict] = []
    seen = 0
    try:
        while time.monotonic() - started < args.minutes * 60 and runner.is_alive():
            time.sleep(args.sample_s)
            samples.append(sample(pipeline, process, seen, started))
            seen = pipeline.metrics.latency["e2e"].count
            print(json.dumps(samples[-1]), flush=True)
    finally:
        pipeline.stop()
        runner.join(timeout=60)
        server.stop()
    report = result["report"].stats
    describe = pipeline.backend.describe() if pipeline.backend else {"name": backend}
    document = {
        "what": f"live {args.size}@{args.fps} RTSP -> {backend} -> null + RTSP push",
        "backend": describe,
        "backend_note": None if model or args.backend else "trained model not available: fallback",
        "minutes": args.minutes,
        "sample_s": args.sample_s,
        "warmup_s": args.warmup_s,
        "summary": summarize(samples, args.warmup_s),
        "final_stats": report,
        "machine": machine_record(),
        "samples": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak_rtsp.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    plot(samples, document["what"], args.out / "soak_rtsp.png")
    print(json.dumps(document["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
