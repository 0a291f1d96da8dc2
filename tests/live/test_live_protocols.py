"""The other protocols, each against a real peer on 127.0.0.1: UDP MPEG-TS both ways, an
RTMP push into an FFmpeg listener, and an HTTP MJPEG source (our own preview server)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from helpers import probe

from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions, SourceOptions
from streamdenoise.sinks.restream import RestreamSink
from streamdenoise.sources.network import NetworkSource

pytestmark = pytest.mark.slow
SIZE = (320, 240)


def frames(count: int, fps: int = 25):
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        yield Frame(image=image, seq=i, pts=i * 3600, time_base=Fraction(1, 90000))


def push(sink: RestreamSink, count: int, fps: int = 25) -> None:
    for i, frame in enumerate(frames(count)):
        if i == 0:
            sink.open(frame, fps)
        else:
            sink.write(frame)
        time.sleep(1 / fps)
    sink.close()


def test_udp_restream_read_back_by_the_udp_source(unused_port):
    url = f"udp://127.0.0.1:{unused_port}"
    source = NetworkSource(url, SourceOptions(timeout_s=5))
    received, stop = [], threading.Event()

    def read() -> None:
        source.open()  # binds the port and waits for data
        for frame in source.frames(stop):
            received.append(frame)
            if len(received) >= 40:
                stop.set()

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)
    sink = RestreamSink(url, SinkOptions(gop=10))
    push(sink, 100)
    stop.set()
    reader.join(timeout=15)
    assert sink.stats()["errors"] == 0 and sink.stats()["frames_sent"] >= 90
    assert len(received) >= 40
    assert (received[0].width, received[0].height) == SIZE
    assert all(b.pts > a.pts for a, b in itertools.pairwise(received))


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="needs the ffmpeg CLI as RTMP server")
def test_rtmp_push_into_an_ffmpeg_listener(unused_port, tmp_path):
    out = tmp_path / "received.flv"
    url = f"rtmp://127.0.0.1:{unused_port}/live/clean"
    listener = subprocess.Popen(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-listen",
            "1",
            "-f",
            "flv",
            "-i",
            url,
            "-c",
            "copy",
            "-y",
            str(out),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)  # let it listen
        sink = RestreamSink(url, SinkOptions(gop=25, bitrate=1_000_000))
        push(sink, 75)
        listener.wait(timeout=15)
    finally:
        if listener.poll() is None:
            listener.kill()
    assert sink.stats()["connects"] == 1 and sink.stats()["errors"] == 0
    result = probe(out)
    assert result.frames >= 70 and (result.width, result.height) == SIZE and result.monotonic


def test_http_mjpeg_source_from_the_preview_server(demo_preview):
    source = NetworkSource(demo_preview + "stream.mjpg", SourceOptions(timeout_s=5))
    source.open()
    stop, got = threading.Event(), []
    for frame in source.frames(stop):
        got.append(frame)
        if len(got) == 10:
            stop.set()
    assert (got[0].width, got[0].height) == (2 * SIZE[0], SIZE[1])  # the --compare view
    assert source.live and source.state.value == "ended"
