"""End to end through the real CLI (a subprocess): real clips in, real files out, checked by
decoding them with PyAV. Pipeline mechanics use the test-only ``test-blur`` backend so these
tests do not depend on any shipped denoiser; the done-criterion test uses the default one."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import av
import pytest
from helpers import make_clip, probe, run_cli, start_cli

pytestmark = pytest.mark.slow
BACKEND = ("--backend", "test-blur")
STAGES = ("capture", "queue_wait", "denoise", "sink_queue_wait", "sink_write", "e2e")


def assert_clean_failure(
    result: subprocess.CompletedProcess, code: int, message: str, one_line: bool = True
) -> None:
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if one_line:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_file_to_mp4_keeps_frames_size_and_timestamps(clip, tmp_path):
    out = tmp_path / "out.mp4"
    stats = tmp_path / "stats.json"
    result = run_cli("run", clip, "-o", out, *BACKEND, "--stats-json", stats, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    source, written = probe(clip), probe(out)
    assert written.frames == source.frames == 30
    assert (written.width, written.height) == (source.width, source.height) == (160, 96)
    assert written.monotonic
    assert abs(written.duration - source.duration) <= 1 / 25 + 1e-6
    assert written.pts_seconds[0] == pytest.approx(0.0, abs=1e-3)
    assert "frames in 30, out 30" in result.stdout  # the final stats table

    report = json.loads(stats.read_text())
    assert report["frames_in"] == report["frames_out"] == 30
    assert report["drops"] == 0 and report["fps_out"] > 0
    for stage in STAGES:
        for key in ("p50", "p95", "p99", "max"):
            assert report["latency_ms"][stage][key] >= 0
    latency = report["latency_ms"]["e2e"]
    assert latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert report["backend"]["backend"] == "test-blur"
    assert report["source"]["state"] == "ended" and report["source"]["reconnects"] == 0
    assert report["sinks"][str(out)]["frames_written"] == 30
    assert report["sinks"][str(out)]["x264_preset"] == "veryfast"
    assert "hint:" not in result.stdout  # nothing dropped: no advice
    assert report["error"] is None and report["interrupted"] is False


def test_several_outputs_at_once(clip, tmp_path):
    outs = [tmp_path / "a.mp4", tmp_path / "b.mkv", tmp_path / "c.ts"]
    args = [a for out in outs for a in ("-o", out)]
    stats = tmp_path / "s.json"
    result = run_cli("run", clip, *args, "-o", "null", *BACKEND, "--stats-json", stats, "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # --quiet
    for out in outs:
        written = probe(out)
        assert (written.frames, written.width, written.height) == (30, 160, 96), out
        assert written.monotonic
    sinks = json.loads(stats.read_text())["sinks"]
    assert [s["frames_written"] for s in sinks.values()] == [30, 30, 30, 30]


def test_max_frames_and_image_folder(tmp_path):
    import cv2
    import numpy as np

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # unpadded numbers: frame2 must come before frame10
        cv2.imwrite(str(folder / f"frame{i}.png"), np.full((64, 80, 3), i * 20, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "f.mkv"
    result = run_cli("run", folder, "-o", out, *BACKEND, "--max-frames", "7", "-q")
    assert result.returncode == 0, result.stderr
    written = probe(out)
    assert (written.frames, written.width, written.height) == (7, 80, 64)
    assert written.pts_seconds[1] - written.pts_seconds[0] == pytest.approx(1 / 25, abs=1e-3)
    with av.open(str(out)) as container:
        means = [f.to_ndarray(format="gray").mean() for f in container.decode(video=0)]
    assert means == sorted(means)  # natural order: brightness rises frame by frame


def test_duration_stops_a_looping_source(tmp_path):
    out = tmp_path / "d.mkv"
    start = time.monotonic()
    result = run_cli("run", "demo", "--size", "160x96", "--loop", "--realtime", "-o", out,
                     *BACKEND, "--duration", "1.5", "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 30
    frames = probe(out).frames
    assert 20 <= frames <= 60  # about 1.5 s at 30 fps


def test_demo_done_criterion(tmp_path):
    """`streamdenoise run demo -o out.mp4 --max-frames 90 --stats-json s.json`, default backend."""
    result = run_cli("run", "demo", "-o", "out.mp4", "--max-frames", "90", "--stats-json",
                     "s.json", cwd=tmp_path, timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = probe(tmp_path / "out.mp4")
    assert (written.frames, written.width, written.height) == (90, 1280, 720)
    assert written.monotonic
    e2e = json.loads((tmp_path / "s.json").read_text())["latency_ms"]["e2e"]
    assert 0 < e2e["p50"] <= e2e["p95"] <= e2e["p99"]


def test_failing_output_does_not_stop_the_others(clip, tmp_path):
    good = tmp_path / "good.mkv"
    result = run_cli("run", clip, "-o", "/proc/not-writable.mp4", "-o", good, *BACKEND, "-q")
    # reported once, when it happens; the exit code says it again
    assert_clean_failure(result, 1, "cannot write /proc/not-writable.mp4")
    assert probe(good).frames == 30


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("point", "sig"),
    [
        ("startup", signal.SIGINT),  # before or around the first frame
        ("first-frames", signal.SIGINT),  # as soon as the outputs exist
        ("steady", signal.SIGINT),  # a couple of seconds in
        ("steady", signal.SIGTERM),
    ],
)
def test_signal_leaves_every_output_playable(tmp_path, point, sig):
    outs = [tmp_path / "a.mp4", tmp_path / "b.mkv", tmp_path / "c.ts"]
    args = [a for out in outs for a in ("-o", out)]
    proc = start_cli("run", "demo", "--size", "320x180", "--loop", *args, *BACKEND, "-q")
    try:
        if point == "startup":
            time.sleep(0.3)
        else:
            assert _wait_for(lambda: all(o.exists() and o.stat().st_size for o in outs), 60)
            if point == "steady":
                time.sleep(2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    for out in outs:
        if point == "startup" and not out.exists():
            continue  # stopped before the first frame: nothing to write is fine
        written = probe(out)
        assert written.frames > 0 and written.monotonic, out


def test_sigkill_still_leaves_a_playable_mp4(tmp_path):
    """Fragmented MP4: everything up to the last complete fragment (one GOP) survives."""
    out = tmp_path / "k.mp4"
    proc = start_cli("run", "demo", "--size", "320x180", "--loop", "--gop", "15", "-o", out,
                     *BACKEND, "-q")  # fmt: skip
    try:
        assert _wait_for(lambda: out.exists() and out.stat().st_size > 50_000, 60)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert probe(out, tolerant=True).frames > 0


def test_python_api_stop_from_another_thread(tmp_path, test_backend):
    from streamdenoise import Pipeline, PipelineConfig
    from streamdenoise.options import SourceOptions

    out = tmp_path / "api.mkv"
    config = PipelineConfig(
        source="demo",
        outputs=[str(out)],
        backend=test_backend,
        source_options=SourceOptions(size=(160, 96), loop=True),
        status=False,
    )
    pipeline = Pipeline(config)
    threading.Timer(1.0, pipeline.stop).start()
    report = pipeline.run()
    assert report.exit_code == 0 and report.error is None
    assert report.stats["frames_out"] == probe(out).frames > 0


# -- bad inputs: one clear line, the documented exit code, no traceback, bounded time ------------
def _truncated(tmp_path: Path, clip: Path) -> Path:
    data = clip.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])  # the index (moov) is at the end: unreadable
    return path


def _zero(tmp_path: Path, clip: Path) -> Path:
    path = tmp_path / "zero.mp4"
    path.write_bytes(b"")
    return path


def _garbage(tmp_path: Path, clip: Path) -> Path:
    path = tmp_path / "garbage.mkv"
    path.write_bytes(b"this is not a video file\n" * 100)
    return path


@pytest.mark.parametrize(
    ("make_input", "code", "message"),
    [
        (lambda tmp, clip: "missing.mp4", 1, "no such file: missing.mp4"),
        (_zero, 1, "empty file (0 bytes)"),
        (_truncated, 1, "cannot open"),
        (_garbage, 1, "cannot open"),
        (lambda tmp, clip: "foo://x", 2, "unsupported source scheme in 'foo://x'"),
        (lambda tmp, clip: "7", 1, "cannot open camera 7"),
    ],
    ids=["missing", "zero-byte", "truncated", "garbage", "scheme", "camera"],
)
def test_bad_source(tmp_path, clip, make_input, code, message):
    source = make_input(tmp_path, clip)
    start = time.monotonic()
    result = run_cli("run", source, "-o", tmp_path / "o.mp4", *BACKEND, cwd=tmp_path, timeout=60)
    assert_clean_failure(result, code, message)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "12x"], "bad size '12x'"),
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--strength", "-2"], "bad strength"),
    ],
)
def test_bad_option(clip, tmp_path, args, message):
    result = run_cli("run", clip, "-o", tmp_path / "o.mp4", *args, timeout=60)
    assert_clean_failure(result, 2, message)


def test_unreachable_host_fails_within_the_timeout(tmp_path):
    start = time.monotonic()
    result = run_cli("run", "rtsp://admin:hunter2@127.0.0.1:9/cam", "-o", tmp_path / "o.mp4",
                     *BACKEND, "--timeout", "2", "--reconnect-max", "0", timeout=60)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr and "admin" not in result.stderr
    assert time.monotonic() - start < 30


def test_file_corrupt_midway_ends_with_what_decoded(tmp_path):
    clip = make_clip(tmp_path / "long.mkv", frames=60, gop=10)
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4000] = bytes(4000)  # zero out a chunk in the middle
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "o.mkv"
    result = run_cli("run", damaged, "-o", out, *BACKEND, "-q", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert 0 < probe(out).frames <= 60


def test_file_loop_resize_and_realtime_pacing(clip, tmp_path):
    out = tmp_path / "loop.mkv"
    start = time.monotonic()
    result = run_cli("run", clip, "--loop", "--realtime", "--policy", "lossless", "--size",
                     "80x48", "--max-frames", "45", "-o", out, *BACKEND, "-q")  # fmt: skip
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    written = probe(out)
    assert (written.frames, written.width, written.height) == (45, 80, 48)
    assert written.monotonic  # timestamps keep increasing across the loop
    assert written.duration == pytest.approx(45 / 25, abs=1 / 25 + 1e-6)
    assert elapsed >= 45 / 25 - 0.2  # paced at 25 fps, not as fast as possible


def test_two_pass_keeps_every_frame_of_a_file(clip, tmp_path):
    """``--two-pass`` (the strongest recurrent tier, forward and backward) on the default
    runtime: every frame written once, in time order, however late each left the denoiser."""
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    result = run_cli("run", clip, "-o", out, "--two-pass", "--stats-json", stats, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = probe(out)
    assert written.frames == 30 and written.monotonic
    report = json.loads(stats.read_text())
    assert report["frames_out"] == report["sinks"][str(out)]["frames_written"] == 30
    assert report["backend"]["two_pass"] and report["backend"]["temporal"]
    assert "wide-temporal, two passes" in result.stdout  # the end table says how it ran


def test_two_pass_with_a_per_frame_model_is_refused_and_writes_nothing(clip, tmp_path):
    out = tmp_path / "o.mp4"
    result = run_cli("run", clip, "-o", out, "--two-pass", "--model", "wide", timeout=60)
    assert_clean_failure(result, 2, "--two-pass needs a recurrent model")
    assert not out.exists()
