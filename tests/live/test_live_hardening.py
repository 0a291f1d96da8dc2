"""A camera that freezes (its server stopped with SIGSTOP, as a hung camera or a stuck
network looks from here): the recording's timeline keeps wall time and the gap says why."""

from __future__ import annotations

import itertools
import json
import signal
import time

import pytest
from helpers import probe, start_cli

pytestmark = [pytest.mark.slow, pytest.mark.rtsp]
FREEZE_S = 8.0


def test_a_frozen_camera_is_a_gap_as_long_as_the_freeze(rtsp_server, tmp_path):
    out, stats = tmp_path / "rec.mkv", tmp_path / "s.json"
    cli = start_cli(
        "run", rtsp_server.url(), "-o", out, "--backend", "test-blur", "--timeout", "3",
        "--stats-json", stats, "-q",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size > 20_000):
            if cli.poll() is not None or time.monotonic() > deadline:
                cli.kill()
                _, stderr = cli.communicate(timeout=60)
                pytest.fail(f"no recording (exit {cli.returncode}): {stderr[-1500:]}")
            time.sleep(0.1)
        time.sleep(1)
        rtsp_server.process.send_signal(signal.SIGSTOP)
        time.sleep(FREEZE_S)
        rtsp_server.process.send_signal(signal.SIGCONT)
        time.sleep(4)  # reconnect and record a little more
    finally:
        if cli.returncode is None:  # (a failure above has already collected it)
            cli.send_signal(signal.SIGINT)
            _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130, stderr
    report = json.loads(stats.read_text())
    (gap,) = report["source"]["gaps"]
    assert gap["reason"] == "read timeout: no data for 3 s"
    assert FREEZE_S - 0.5 <= gap["lost_s"] <= FREEZE_S + 3
    pts = probe(out).pts_seconds
    widest = max(b - a for a, b in itertools.pairwise(pts))
    assert widest == pytest.approx(gap["lost_s"], abs=0.5)
