"""Percentile maths against numpy, bounded memory, and the report's shape."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from streamdenoise.frame import Frame
from streamdenoise.metrics import STAGES, LatencySeries, Metrics, percentile


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(n, q):
    data = np.random.default_rng(n).exponential(5.0, n).tolist()
    assert percentile(data, q) == pytest.approx(float(np.percentile(data, q)), rel=1e-12)


def test_percentile_hand_computed_interpolation():
    # rank = 0.5 * 3 = 1.5 -> halfway between 2 and 10
    assert percentile([10, 1, 2, 20], 50) == 6
    assert percentile([5], 99) == 5
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_series_keeps_a_bounded_window_but_exact_totals():
    series = LatencySeries(window=100)
    for i in range(1000):
        series.add(i / 1000)
    assert series.count == 1000
    assert series.max == pytest.approx(0.999)
    recent = series.recent()
    assert recent.tolist() == pytest.approx([i / 1000 for i in range(900, 1000)])  # in order
    summary = series.summary_ms()
    assert summary["p50"] == pytest.approx(np.percentile(np.arange(900, 1000), 50), rel=1e-9)
    assert summary["mean"] == pytest.approx(499.5)


def test_report_contains_every_stage_and_redacts():
    metrics = Metrics()
    sink = metrics.add_sink("rtsp://user:secret@cam/out")
    for seq in range(5):
        f = Frame(np.zeros((2, 2, 3), np.uint8), seq=seq, capture_ts=100.0 + seq)
        f.marks.update(enqueued=100.001 + seq, dequeued=100.01 + seq, denoised=100.02 + seq)
        metrics.captured(f)
        metrics.denoised(f)
        metrics.written(sink, f, picked=100.03 + seq, done=100.05 + seq)
    report = metrics.report(
        source={"description": "rtsp://admin:hunter2@10.0.0.1/stream"},
        backend={"backend": "x"},
        sink_stats={},
        end=105.0,
    )
    text = json.dumps(report)
    assert "secret" not in text and "hunter2" not in text and "admin" not in text
    assert report["frames_in"] == report["frames_out"] == 5
    assert set(report["latency_ms"]) == set(STAGES)
    for stage in STAGES:
        assert {"p50", "p95", "p99", "max"} <= set(report["latency_ms"][stage])
    assert report["latency_ms"]["e2e"]["p50"] == pytest.approx(50.0)
    assert report["latency_ms"]["denoise"]["max"] == pytest.approx(10.0)
    assert report["fps_out"] == pytest.approx(1.0)
    assert report["sinks"]["rtsp://***@cam/out"]["frames_written"] == 5


def test_status_line_and_final_table_render_a_report():
    from rich.console import Console

    from streamdenoise.status import print_stats, status_text

    line = status_text(
        {"fps_in": 30.0, "fps_out": 29.5, "e2e_p50_ms": 41.26, "e2e_p99_ms": None, "drops": 3,
         "frames_out": 120, "source_state": "reconnecting", "reconnects": 2}
    )  # fmt: skip
    assert line == (
        "fps 30.0 in 29.5 out | e2e p50 41.3 p99 - ms | drops 3 | source reconnecting | "
        "reconnects 2 | 120 frames"
    )
    metrics = Metrics()
    metrics.add_sink("rtsp://u:pw@h/x")
    report = metrics.report(source={"description": "rtsp://u:pw@cam"}, backend={}, sink_stats={})
    console = Console(record=True, width=120)
    print_stats(report, console)
    text = console.export_text()
    assert "e2e" in text and "rtsp://***@h/x" in text and "pw" not in text


def test_a_recording_that_cannot_keep_up_gets_one_hint():
    from streamdenoise.status import encoder_hint

    def stats(drops: int, preset: str, write_ms: float) -> dict:
        sink = {"x264_preset": preset, "latency_ms": {"sink_write": {"mean": write_ms}}}
        return {"frames_in": 600, "drops": drops, "fps_in": 30.0, "sinks": {"out.mp4": sink}}

    hint = encoder_hint(stats(90, "veryfast", 18.0))
    assert hint == (
        "hint: 15% of the frames were dropped while out.mp4 took 18 ms of each 33 ms frame to "
        "encode (x264 veryfast); --preset ultrafast costs about half, for a larger file"
    )
    assert encoder_hint(stats(90, "ultrafast", 18.0)) is None  # already the cheapest
    assert encoder_hint(stats(6, "veryfast", 18.0)) is None  # 1 % dropped: keeping up
    assert encoder_hint(stats(90, "veryfast", 5.0)) is None  # the encoder is not the cost
    assert encoder_hint({"frames_in": 0, "drops": 0, "fps_in": 0.0, "sinks": {}}) is None


def test_several_percentiles_at_once_match_numpy():
    from streamdenoise.metrics import percentiles

    data = np.random.default_rng(7).lognormal(size=333).tolist()
    qs = (50, 95, 99, 99.9)
    assert percentiles(data, qs) == pytest.approx(np.percentile(data, qs).tolist(), rel=1e-12)
