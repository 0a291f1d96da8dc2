"""Pipeline metrics: per-stage latency percentiles, throughput, drops and per-sink counters.

Memory stays bounded on runs of any length: each latency series keeps exact totals (count,
sum, max) over the whole run and the **last** :data:`WINDOW` samples in a ring buffer;
percentiles are computed over that window (the recent behaviour, which is what matters on a
stream that runs for days). Timestamps are ``time.monotonic()`` seconds; reports are in ms.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Sequence

import numpy as np

from streamdenoise.frame import Frame
from streamdenoise.redact import redact, redact_obj

#: Samples kept per latency series for percentiles (≈ 5.5 min at 30 fps).
WINDOW = 10_000
#: Seconds of history behind the live fps figures of the status line.
RATE_WINDOW_S = 2.0
PERCENTILES = (50, 95, 99)

# Stage names, in pipeline order, as they appear in the report under ``latency_ms``.
STAGES = ("capture", "queue_wait", "denoise", "sink_queue_wait", "sink_write", "e2e")
STAGE_HELP = {
    "capture": "frame captured -> in the source queue",
    "queue_wait": "waiting in the source queue for the denoiser",
    "denoise": "backend.process()",
    "sink_queue_wait": "denoised -> a sink thread picks it up",
    "sink_write": "sink.write() (encode + mux / show / send)",
    "e2e": "captured -> written by a sink",
}


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default).

    rank = q/100 · (n - 1); the result interpolates between the samples at floor(rank) and
    ceil(rank) of the sorted data. NaN for no samples.
    """
    return percentiles(samples, (q,))[0]


def percentiles(samples: Sequence[float], qs: Sequence[float]) -> list[float]:
    """Several percentiles of the same data, sorting it once."""
    if any(not 0 <= q <= 100 for q in qs):
        raise ValueError("q must be within [0, 100]")
    data = sorted(samples)
    if not data:
        return [math.nan] * len(qs)
    out = []
    for q in qs:
        rank = q / 100 * (len(data) - 1)
        low = math.floor(rank)
        high = min(low + 1, len(data) - 1)
        out.append(data[low] + (data[high] - data[low]) * (rank - low))
    return out


class LatencySeries:
    """Totals over the whole run plus a ring of the last ``window`` samples (seconds)."""

    def __init__(self, window: int = WINDOW) -> None:
        self._ring = np.zeros(window, dtype=np.float64)
        self._next = 0
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._ring[self._next] = seconds
            self._next = (self._next + 1) % len(self._ring)
            self.count += 1
            self.total += seconds
            self.max = max(self.max, seconds)

    def recent(self) -> np.ndarray:
        """The samples in the window, oldest first."""
        with self._lock:
            if self.count < len(self._ring):
                return self._ring[: self.count].copy()
            return np.roll(self._ring, -self._next)

    def last(self, n: int) -> np.ndarray:
        """The newest ``n`` samples (at most the window), oldest first (for time series)."""
        with self._lock:
            n = min(n, self.count, len(self._ring))
            return np.roll(self._ring, -self._next)[len(self._ring) - n :].copy()

    def summary_ms(self) -> dict:
        """p50/p95/p99 over the window; mean/max/count over the whole run; None if empty."""
        if not self.count:
            return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
        out = {"count": self.count, "mean": round(self.total / self.count * 1000, 3)}
        values = percentiles(self.recent().tolist(), PERCENTILES)
        for q, value in zip(PERCENTILES, values, strict=True):
            out[f"p{q}"] = round(value * 1000, 3)
        out["max"] = round(self.max * 1000, 3)
        return out


class RateMeter:
    """Events per second over the last RATE_WINDOW_S seconds (for the live status line)."""

    def __init__(self) -> None:
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float) -> None:
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = now - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > RATE_WINDOW_S:
            self._times.popleft()


class SinkCounters:
    def __init__(self, name: str) -> None:
        self.name = name
        self.frames_written = 0
        self.drops = 0
        self.error: str | None = None
        self.write = LatencySeries()
        self.e2e = LatencySeries()


class Metrics:
    """Shared by all pipeline threads; each recording method is called by one stage."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_capture: float | None = None
        self.last_output: float | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.source_drops = 0
        self.latency = {stage: LatencySeries() for stage in STAGES}
        self.rate_in = RateMeter()
        self.rate_out = RateMeter()
        self.sinks: dict[str, SinkCounters] = {}

    def add_sink(self, name: str) -> SinkCounters:
        counters = SinkCounters(name)
        self.sinks[name] = counters
        return counters

    # -- recording, one method per stage -------------------------------------------------
    def captured(self, frame: Frame) -> None:
        """Source thread: the frame is in the source queue (marks['enqueued'] set)."""
        self.frames_in += 1
        if self.first_capture is None:
            self.first_capture = frame.capture_ts
        self.rate_in.tick(frame.marks["enqueued"])
        self.latency["capture"].add(frame.marks["enqueued"] - frame.capture_ts)

    def denoised(self, frame: Frame) -> None:
        """Denoise worker: marks 'dequeued' and 'denoised' are set."""
        marks = frame.marks
        self.frames_out += 1
        self.rate_out.tick(marks["denoised"])
        self.latency["queue_wait"].add(marks["dequeued"] - marks["enqueued"])
        self.latency["denoise"].add(marks["denoised"] - marks["dequeued"])

    def written(self, sink: SinkCounters, frame: Frame, picked: float, done: float) -> None:
        """Sink thread: ``picked`` = taken from its queue, ``done`` = write() returned."""
        sink.frames_written += 1
        sink.write.add(done - picked)
        sink.e2e.add(done - frame.capture_ts)
        self.latency["sink_queue_wait"].add(picked - frame.marks["denoised"])
        self.latency["sink_write"].add(done - picked)
        self.latency["e2e"].add(done - frame.capture_ts)
        self.last_output = done

    # -- reading ---------------------------------------------------------------------------
    def elapsed(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return max(now - (self.first_capture or self.started), 1e-9)

    def sink_drops(self) -> int:
        return sum(s.drops for s in self.sinks.values())

    def snapshot(self) -> dict:
        """Cheap live figures for the status line."""
        e2e = self.latency["e2e"].recent().tolist()
        p50, p99 = percentiles(e2e, (50, 99)) if e2e else (None, None)
        return {
            "fps_in": self.rate_in.rate(),
            "fps_out": self.rate_out.rate(),
            "e2e_p50_ms": None if p50 is None else p50 * 1000,
            "e2e_p99_ms": None if p99 is None else p99 * 1000,
            "drops": self.source_drops + self.sink_drops(),
            "frames_out": self.frames_out,
        }

    def report(
        self,
        *,
        source: dict,
        backend: dict,
        sink_stats: dict[str, dict],
        end: float | None = None,
        **extra,
    ) -> dict:
        """The ``--stats-json`` document; every string in it (keys too) is redacted."""
        end = end if end is not None else time.monotonic()
        elapsed = self.elapsed(end)
        sinks = {}
        for name, counters in self.sinks.items():
            sinks[redact(name)] = {
                "frames_written": counters.frames_written,
                "drops": counters.drops,
                "error": counters.error,
                "latency_ms": {
                    "sink_write": counters.write.summary_ms(),
                    "e2e": counters.e2e.summary_ms(),
                },
                **sink_stats.get(name, {}),
            }
        report = {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "drops": self.source_drops + self.sink_drops(),
            "drops_detail": {
                "source_queue": self.source_drops,
                "sinks": {redact(n): c.drops for n, c in self.sinks.items()},
            },
            "duration_s": round(elapsed, 3),
            "fps_in": round(self.frames_in / elapsed, 2),
            "fps_out": round(self.frames_out / elapsed, 2),
            "latency_ms": {stage: self.latency[stage].summary_ms() for stage in STAGES},
            "latency_window": WINDOW,
            "source": source,
            "backend": backend,
            "sinks": sinks,
            **extra,
        }
        return redact_obj(report)
