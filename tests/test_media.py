"""What a phone or a streamer's source carries besides pictures: a rotation tag and audio.

* A clip stored sideways with rotation=90 comes out the right way up, pixel for pixel what
  FFmpeg itself shows (its CLI applies the display matrix: an independent reference).
* Audio is passed through (copied where the container allows, else AAC) and stays in sync:
  the test clip flashes white and beeps at every whole second, and the offset between the
  flashes and the beeps is measured in the output against the input.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import make_clip, probe, run_cli, start_cli

pytestmark = pytest.mark.slow
FPS, RATE, SECONDS = 25, 48_000, 4
BEEP_S = 0.05


# -- rotation ------------------------------------------------------------------------------
def rotated_clip(path: Path, degrees: int) -> Path:
    """A clip stored 160x96 with a display matrix saying: show it turned by ``degrees``."""
    plain = make_clip(path.with_name("plain.mkv"), frames=10, codec="ffv1")
    with av.open(str(plain)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        stream.codec_context.options = {"qp": "0"}  # lossless: pixels comparable exactly
        stream.set_display_rotation(degrees)
        for frame in src.decode(video=0):
            frame.pict_type = av.video.frame.PictureType.NONE
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode(None))
    return path


def ffmpeg_upright_first_frame(path: Path) -> np.ndarray:
    """The first frame as the ffmpeg CLI shows it (autorotate is its default)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        width, height = frame.width, frame.height
        if round(frame.rotation) % 180:
            width, height = height, width
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("degrees", [90, 270, 180])
def test_a_rotated_phone_clip_comes_out_upright(tmp_path, degrees):
    source = rotated_clip(tmp_path / f"phone{degrees}.mp4", degrees)
    out = tmp_path / "out.mkv"
    result = run_cli("run", source, "-o", out, "--backend", "identity", "--crf", "0", "-q")
    assert result.returncode == 0, result.stderr
    expected = ffmpeg_upright_first_frame(source)
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        assert frame.rotation == 0  # applied, so no player needs to apply it again
        got = frame.to_ndarray(format="rgb24")
    assert got.shape == expected.shape == ((160, 96, 3) if degrees != 180 else (96, 160, 3))
    assert np.abs(got.astype(int) - expected).mean() < 3  # x264 CRF 0 (4:2:0), not identical


# -- audio ---------------------------------------------------------------------------------
def av_clip(path: Path, audio_codec: str, video_codec: str = "libx264") -> Path:
    """Black video that flashes white on each whole second; silence with a 1 kHz beep that
    starts at the same instants. Audio and video carry the same timing marks."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(video_codec, rate=FPS)
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        video.codec_context.max_b_frames = 0
        audio = container.add_stream(audio_codec, rate=RATE)
        audio.codec_context.layout = "mono"
        audio_format = "fltp" if audio_codec == "aac" else "s16"
        total = SECONDS * RATE
        t = np.arange(total) / RATE
        wave = np.where((t % 1.0) < BEEP_S, 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
        block = 1024
        for start in range(0, total, block):
            chunk = wave[start : start + block]
            samples = chunk.astype(np.float32) if audio_format == "fltp" else (
                chunk * 32767).astype(np.int16)  # fmt: skip
            frame = av.AudioFrame.from_ndarray(samples[None, :], format=audio_format,
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        for i in range(SECONDS * FPS):
            level = 255 if i % FPS == 0 else 0
            image = np.full((96, 160, 3), level, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


def marks(path_or_url: str, timeout: float | None = None) -> tuple[list[float], list[float]]:
    """(flash times, beep onset times) in seconds, where a player would place them. A live
    stream (``timeout`` given) is read until it has been silent for that long."""
    flashes: list[float] = []
    beeps: list[float] = []
    options = {"timeout": str(int(timeout * 1e6))} if timeout else {}
    live = contextlib.suppress(av.FFmpegError) if timeout else contextlib.nullcontext()
    with live, av.open(path_or_url, options=options) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        for frame in container.decode(video, audio):
            seconds = float(frame.pts * frame.time_base)
            if isinstance(frame, av.VideoFrame):
                if frame.to_ndarray(format="gray").mean() > 128:
                    flashes.append(seconds)
                continue
            full = 32767.0 if frame.format.name.startswith("s16") else 1.0
            samples = frame.to_ndarray().reshape(-1)[: frame.samples] / full
            loud = np.flatnonzero(np.abs(samples) > 0.25)
            onset = seconds + loud[0] / frame.sample_rate if loud.size else None
            if onset is not None and (not beeps or onset - beeps[-1] > 0.5):
                beeps.append(onset)
    return flashes, beeps


def av_offset(flashes: list[float], beeps: list[float]) -> float:
    """Mean (beep - flash) over the marks both streams have (a live recording may start
    just after the first beep)."""
    pairs = [(f, min(beeps, key=lambda b: abs(b - f))) for f in flashes]
    pairs = [(f, b) for f, b in pairs if abs(b - f) < 0.5]
    assert len(pairs) >= 2, (flashes, beeps)
    return float(np.mean([b - f for f, b in pairs]))


@pytest.mark.parametrize(
    ("source_suffix", "audio_codec", "out_suffix", "mode"),
    [
        (".mp4", "aac", ".mp4", "copy aac"),
        (".mkv", "pcm_s16le", ".mkv", "copy pcm_s16le"),
        (".mkv", "pcm_s16le", ".mp4", "pcm_s16le -> aac"),
        (".mkv", "pcm_s16le", ".ts", "pcm_s16le -> aac"),
    ],
)
def test_audio_is_passed_through_in_sync(tmp_path, source_suffix, audio_codec, out_suffix, mode):
    source = av_clip(tmp_path / f"av{source_suffix}", audio_codec)
    out, stats = tmp_path / f"out{out_suffix}", tmp_path / "s.json"
    result = run_cli("run", source, "-o", out, "--backend", "test-blur", "-q",
                     "--stats-json", stats)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert mode in stats.read_text()
    before = av_offset(*marks(str(source)))
    flashes, beeps = marks(str(out))
    after = av_offset(flashes, beeps)
    assert len(flashes) == len(beeps) == SECONDS
    # in sync: within one AAC frame (1024 samples = 21 ms) of the input's own offset
    assert abs(after - before) <= 1024 / RATE + 1e-3, (before, after)
    assert abs(after) < 1 / FPS


def test_no_audio_drops_it(tmp_path):
    source = av_clip(tmp_path / "av.mp4", "aac")
    out = tmp_path / "out.mp4"
    result = run_cli("run", source, "-o", out, "--backend", "identity", "--no-audio", "-q")
    assert result.returncode == 0, result.stderr
    with av.open(str(out)) as container:
        assert not container.streams.audio
    assert probe(out).frames == SECONDS * FPS


def test_audio_reaches_a_udp_restream_in_sync(tmp_path):
    source = av_clip(tmp_path / "av.mp4", "aac")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    received: dict[str, tuple] = {}

    def listen() -> None:
        received["marks"] = marks(f"udp://127.0.0.1:{port}", timeout=5)

    reader = threading.Thread(target=listen)
    reader.start()
    result = run_cli("run", source, "-o", f"udp://127.0.0.1:{port}", "--backend", "test-blur",
                     "--realtime", "-q")  # fmt: skip
    reader.join(timeout=30)
    assert result.returncode == 0, result.stderr
    flashes, beeps = received["marks"]
    assert len(flashes) >= 2 and len(beeps) >= 2
    assert abs(av_offset(flashes, beeps)) < 1 / FPS + 1024 / RATE


def test_audio_from_a_live_source_is_recorded_in_sync(tmp_path):
    """A live network input with audio: one run streams the clip to UDP in real time, a
    second run reads that stream as its source and records it."""
    source = av_clip(tmp_path / "av.mp4", "aac")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{sock.getsockname()[1]}"
    out, stats = tmp_path / "rec.mkv", tmp_path / "s.json"
    recorder = start_cli("run", url, "-o", out, "--backend", "test-blur", "--timeout", "5",
                         "--reconnect-max", "0", "--stats-json", stats, "-q")  # fmt: skip
    time.sleep(2)  # the recorder listens before the sender starts
    sender = run_cli("run", source, "-o", url, "--backend", "test-blur", "--realtime", "-q")
    assert sender.returncode == 0, sender.stderr
    recorder.send_signal(signal.SIGINT)
    _, stderr = recorder.communicate(timeout=60)
    assert recorder.returncode == 130, stderr
    assert "aac" in json.loads(stats.read_text())["source"]["audio"]
    flashes, beeps = marks(str(out))
    assert len(flashes) >= 2 and len(beeps) >= 2
    assert abs(av_offset(flashes, beeps)) < 1 / FPS + 1024 / RATE
