"""Fixtures that run a real GStreamer RTSP server (tests/rtsp_server.py) on 127.0.0.1.

The server runs under the system Python (Debian python3-gi + gir1.2-gst-rtsp-server-1.0);
tests that need it are skipped, with the reason, only where that is not installed.
"""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from helpers import start_cli
from rtsp_control import RtspServer, free_port, gst_rtsp_missing


@pytest.fixture
def rtsp_server_factory(tmp_path):
    """``make(**kwargs)`` starts a server; every server is killed at teardown."""
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    servers: list[RtspServer] = []

    def make(**kwargs) -> RtspServer:
        server = RtspServer(tmp_path / f"rtsp{len(servers)}", **kwargs)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def rtsp_server(rtsp_server_factory) -> RtspServer:
    """A 320×240 25 fps camera at ``/cam`` plus a RECORD mount at ``/push``."""
    return rtsp_server_factory()


@pytest.fixture
def silent_server():
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def unused_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (connections are refused)."""
    return free_port()


@pytest.fixture
def refused_port():
    """A TCP port on 127.0.0.1 that refuses connections for the whole test: bound but never
    listening, so no server started meanwhile can be handed the same port (a port that was
    merely free once was, and the "refused" case then met a real camera)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def demo_preview(unused_port):
    """A real run of the demo clip (320×240, endless, paced) into the HTTP preview with
    ``--compare``; yields the base URL once the page answers; the run is ended at teardown."""
    base = f"http://127.0.0.1:{unused_port}/"
    cli = start_cli(
        "run", "demo", "-o", base, "--backend", "test-blur", "--size", "320x240",
        "--loop", "--realtime", "--compare", "--duration", "60",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base, timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and cli.poll() is None, "preview not up"
                time.sleep(0.1)
        yield base
    finally:
        cli.terminate()
        cli.communicate(timeout=30)
