"""Start, kill and restart the GStreamer test RTSP server (tests/rtsp_server.py) from Python.

Plain Python (no pytest) so that the live tests' fixtures and ``benchmarks/soak_rtsp.py``
share it. The server itself runs under the system Python, which has python3-gi.
"""

from __future__ import annotations

import socket
import subprocess
import time
from functools import cache
from pathlib import Path
from urllib.parse import quote

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
READY_TIMEOUT_S = 15.0
ELEMENTS = ("x264enc", "rtph264pay", "rtph264depay", "h264parse", "mpegtsmux", "compositor")


@cache
def gst_rtsp_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        " from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        f" print(' '.join(e for e in {ELEMENTS!r} if not Gst.ElementFactory.find(e)))"
    )
    try:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"{SYSTEM_PYTHON} not usable: {err}"
    if done.returncode != 0:
        return f"{SYSTEM_PYTHON} lacks python3-gi / GstRtspServer: {done.stderr.strip()[-200:]}"
    if done.stdout.strip():
        return f"GStreamer elements missing: {done.stdout.strip()}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RtspServer:
    """One server process on 127.0.0.1; ``restart()`` brings it back on the same port."""

    def __init__(
        self,
        workdir: Path,
        size: str = "320x240",
        fps: int = 25,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.record_dir = workdir / "received"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.size, self.fps = size, fps
        self.user, self.password = user, password
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def url(self, path: str = "/cam", user: str | None = None, password: str | None = None) -> str:
        userinfo = f"{quote(user)}:{quote(password or '')}@" if user else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.starts += 1
        log = self.workdir / f"server-{self.starts}.log"
        argv = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--size",
            self.size,
            "--fps",
            str(self.fps),
            "--record-dir",
            str(self.record_dir),
        ]
        if self.user:
            argv += ["--user", self.user, "--password", self.password or ""]
        with open(log, "w") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if "READY" in log.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        text = log.read_text()
        self.stop()
        raise RuntimeError(f"RTSP server did not start on port {self.port}: {text[-500:]}")

    def stop(self) -> None:
        """Kill it the way a camera dies (no goodbye to clients)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def received(self) -> list[Path]:
        """Files the RECORD mount wrote, oldest first."""
        return sorted(self.record_dir.glob("push-*.ts"), key=lambda p: p.stat().st_mtime)
