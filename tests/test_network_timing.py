"""Unit tests for the live-source rules: one increasing timeline, bounded backoff, and open
errors classified from FFmpeg's words."""

from __future__ import annotations

import errno
import itertools

import av
import pytest

from streamdenoise.sources.network import (
    TIME_BASE,
    PtsRebaser,
    backoff_delay,
    describe_open_error,
)


def seconds(ticks: int) -> float:
    return float(ticks * TIME_BASE)


def test_pts_follow_the_source_within_a_connection():
    clock = PtsRebaser()
    out = [clock.map(100.0 + i / 25, now=10.0 + i / 25) for i in range(5)]
    assert out[0] == 0
    assert [round(seconds(b - a), 4) for a, b in itertools.pairwise(out)] == [0.04] * 4


def test_a_reconnect_continues_after_the_wall_clock_gap():
    clock = PtsRebaser()
    last = [clock.map(500.0 + i / 25, now=1.0 + i / 25) for i in range(3)][-1]
    clock.new_segment()
    # The camera rebooted: its clock restarts near zero, 3 s of wall time passed.
    first_after = clock.map(0.5, now=1.08 + 3.0)
    second_after = clock.map(0.54, now=1.12 + 3.0)
    assert seconds(first_after - last) == pytest.approx(3.0, abs=1e-3)
    assert seconds(second_after - first_after) == pytest.approx(0.04, abs=1e-4)


def test_missing_or_backward_pts_never_break_monotonicity():
    clock = PtsRebaser()
    inputs = [(None, 0.0), (1.0, 0.04), (1.04, 0.08), (0.2, 0.12), (None, 0.16), (0.28, 0.2)]
    out = [clock.map(pts, now) for pts, now in inputs]
    assert all(b > a for a, b in itertools.pairwise(out))


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt in range(12):
        base = min(8.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, 0.5, 8.0) for _ in range(50)]
        assert all(base / 2 <= d <= base for d in delays)
    assert len({round(backoff_delay(3, 0.5, 8.0), 6) for _ in range(20)}) > 1  # jittered


@pytest.mark.parametrize(
    ("error", "elapsed_s", "cause"),
    [
        # The URL is part of str(err): a port or path holding "404"/"401" is not a status.
        (av.error.TimeoutError(errno.ETIMEDOUT, "Connection timed out",
                               "rtsp://u:p@127.0.0.1:40417/cam401"), 2.0, "timed out"),
        (av.error.ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused",
                                         "rtsp://127.0.0.1:14040/404"), 0.01, "refused"),
        (av.error.HTTPNotFoundError(-1, "Server returned 404 Not Found", "rtsp://h/cam"),
         0.1, "not found (404)"),
        (OSError(errno.EIO, "Server returned 401 Unauthorized (authorization failed)"),
         0.1, "unauthorized (401)"),
        (OSError(errno.EIO, "Server returned 403 Forbidden (access denied)"), 0.1,
         "forbidden (403)"),
    ],
)  # fmt: skip
def test_open_errors_are_read_from_ffmpegs_words_not_the_url(error, elapsed_s, cause):
    message = describe_open_error(error, elapsed_s=elapsed_s, timeout_s=2.0)
    assert cause in message and "rtsp" not in message
