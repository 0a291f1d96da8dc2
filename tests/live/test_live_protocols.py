"""The other protocols against real peers on 127.0.0.1: UDP MPEG-TS both ways, an RTMP push
to a server that never answers, and an HTTP MJPEG source (our own preview server)."""

from __future__ import annotations

import contextlib
import http.server
import itertools
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from helpers import make_clip

from streamdenoise.errors import SinkError, SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions, SourceOptions
from streamdenoise.sinks.restream import IO_TIMEOUT_S, RestreamSink
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
            sink.open(frame, fps)  # as the pipeline does: open with the first, then write all
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


def test_rtmp_push_to_a_silent_server_never_freezes_the_process(silent_server):
    """FFmpeg opens RTMP outputs while holding the GIL and has no handshake timeout there; the
    sink's own pre-connect check must keep every other thread running and report it."""
    ticks = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    threading.Thread(target=ticker, daemon=True).start()
    sink = RestreamSink(f"rtmp://127.0.0.1:{silent_server}/live/clean", SinkOptions())
    started = time.monotonic()
    with pytest.raises(SinkError, match="no frame delivered"):
        push(sink, 175)  # 7 s: longer than the 5 s connect timeout
    stop.set()
    # close() waits at most for the attempt in flight (IO_TIMEOUT_S + 2), never forever.
    assert time.monotonic() - started < 7 + IO_TIMEOUT_S + 2 + 1
    longest_pause = max(b - a for a, b in itertools.pairwise(ticks))
    assert longest_pause < 0.5
    stats = sink.stats()
    assert stats["connects"] == 0 and stats["errors"] >= 1 and stats["drops"] > 100
    assert "no answer" in stats["last_error"]


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


@contextlib.contextmanager
def busy_then_serving(clip: Path, busy: int | None):
    """A real HTTP server on 127.0.0.1 that answers 503 to its first ``busy`` requests (None:
    to all of them), then sends ``clip``; yields (url, the statuses it answered)."""
    answered: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if busy is None or len(answered) < busy:
                answered.append(503)
                self.send_error(503, "busy")
                return
            answered.append(200)
            body = clip.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam.ts", answered
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_busy_at_first_is_asked_again_until_it_serves(tmp_path):
    clip = make_clip(tmp_path / "clip.ts", frames=20)
    with busy_then_serving(clip, busy=2) as (url, answered):
        source = NetworkSource(url, SourceOptions(timeout_s=5))
        source.open()
        stop, got = threading.Event(), []
        for frame in source.frames(stop):  # a live stream (no duration): read what it sent
            got.append(frame)
            if len(got) == 20:
                stop.set()
    assert answered[:3] == [503, 503, 200]
    assert len(got) == 20 and (got[0].width, got[0].height) == (160, 96)


def test_a_server_that_stays_busy_is_one_line_after_the_timeout(tmp_path):
    clip = make_clip(tmp_path / "clip.ts", frames=5)
    with busy_then_serving(clip, busy=None) as (url, answered):
        source = NetworkSource(url, SourceOptions(timeout_s=1.5))
        started = time.monotonic()
        with pytest.raises(SourceError) as failed:
            source.open()
        took = time.monotonic() - started
    assert "server error (5XX)" in str(failed.value) and "\n" not in str(failed.value)
    assert len(answered) >= 2 and 1.4 <= took <= 4
