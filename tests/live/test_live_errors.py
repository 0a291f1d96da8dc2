"""A camera that cannot be opened says why, within the timeout + 2 s, and never leaks the
password: refused port, silent host, wrong path (404), wrong credentials (401)."""

from __future__ import annotations

import json
import time

import pytest
from helpers import run_cli

from streamdenoise.errors import SourceError
from streamdenoise.options import SourceOptions
from streamdenoise.sources.network import NetworkSource

pytestmark = pytest.mark.rtsp

USER, PASSWORD = "admin", "Sup3r-Secret-42"
TIMEOUT_S = 2.0


@pytest.fixture
def protected_camera(rtsp_server_factory):
    return rtsp_server_factory(user=USER, password=PASSWORD)


def cases(camera, silent_port: int, closed_port: int) -> dict[str, tuple[str, str]]:
    """case -> (URL with the password in it, words the message must contain)."""
    return {
        "refused": (f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{closed_port}/cam", "refused"),
        "silent host": (f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{silent_port}/cam", "timed out"),
        "wrong path": (camera.url("/nope", USER, PASSWORD), "not found"),
        "wrong password": (camera.url("/cam", USER, "wrong-" + PASSWORD), "unauthorized"),
    }


def test_open_errors_are_classified_fast_and_redacted(
    protected_camera, silent_server, refused_port
):
    for name, (url, words) in cases(protected_camera, silent_server, refused_port).items():
        source = NetworkSource(url, SourceOptions(timeout_s=TIMEOUT_S))
        started = time.monotonic()
        with pytest.raises(SourceError) as caught:
            source.open()
        elapsed = time.monotonic() - started
        message = str(caught.value)
        assert elapsed <= TIMEOUT_S + 2, (name, elapsed)
        assert words in message, (name, message)
        assert PASSWORD not in message and PASSWORD not in json.dumps(source.stats())
        assert source.state.value == "failed"


@pytest.mark.slow
def test_cli_reports_open_errors_without_the_password(
    protected_camera, silent_server, tmp_path, refused_port
):
    for name, (url, words) in cases(protected_camera, silent_server, refused_port).items():
        stats = tmp_path / "stats.json"
        started = time.monotonic()
        done = run_cli(
            "run",
            url,
            "-o",
            tmp_path / "out.mp4",
            "--backend",
            "test-blur",
            "--timeout",
            str(TIMEOUT_S),
            "--stats-json",
            stats,
            timeout=30,
        )
        elapsed = time.monotonic() - started
        assert done.returncode == 1, (name, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr, (name, done.stderr)
        assert "rtsp://***@127.0.0.1" in done.stderr
        for text in (done.stdout, done.stderr, stats.read_text() if stats.exists() else ""):
            assert PASSWORD not in text and USER not in text, name
        # Process start-up (~0.5 s) on top of the source's own bound.
        assert elapsed <= TIMEOUT_S + 2 + 1.5, (name, elapsed)


def test_good_credentials_open_and_stay_redacted(protected_camera):
    source = NetworkSource(protected_camera.url("/cam", USER, PASSWORD), SourceOptions())
    source.open()
    try:
        assert source.state.value == "live"
        assert PASSWORD not in source.describe() and "***@" in source.describe()
    finally:
        source.close()
