"""Network streams through PyAV: RTSP(S), HTTP(S) (MJPEG, HLS, files), UDP, SRT, RTMP.

What surveillance users need from a camera reader, and what this module guarantees:

* no network operation blocks longer than ``timeout_s`` (PyAV's interrupt timeout on every
  open and read, FFmpeg's own socket timeouts underneath, and a stall watchdog for streams
  that deliver packets but no pictures);
* a lost stream is reopened with exponential backoff plus jitter, up to ``reconnect_max``
  attempts per outage (None = forever); the time lost is recorded as a gap;
* after a reconnect the first frame carries ``discontinuity=True`` and PTS continue on one
  increasing timeline, so file and restream outputs keep running;
* a first open that fails says why (refused, unauthorized, not found, timed out...) in one
  line with the URL's credentials redacted.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import random
import re
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from urllib.parse import urlsplit

import av
import cv2

from streamdenoise.audio import AudioTrack
from streamdenoise.errors import SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SourceOptions
from streamdenoise.redact import redact
from streamdenoise.sources.base import Source, SourceState, decoded_size, upright

#: One timeline for every connection: cameras restart their clocks when they reboot.
TIME_BASE = Fraction(1, 90000)
#: Gap records kept in stats (the totals are kept for the whole run).
GAPS_KEPT = 50
#: First wait before asking a server that answered 5XX at open again (then doubling).
OPEN_RETRY_S = 0.25


class PtsRebaser:
    """Maps each connection's stream PTS onto one strictly increasing timeline.

    Within a connection the source's own spacing is kept; a new connection (or a PTS that
    jumps backwards, or a missing PTS) continues from the last output by the wall-clock time
    that passed, so a gap in the picture is a gap in the timestamps too.

    "The wall-clock time of the last frame" is when that frame was live by its own PTS, not
    when it was decoded: after a read timeout FFmpeg hands over the packets it still held
    (RTP reordering) seconds late, and dating the gap from then would shorten it.
    """

    def __init__(self) -> None:
        self._anchor: tuple[float, int, float] | None = None  # (input s, output ticks, wall)
        self._last_in: float | None = None
        self._last_out: int | None = None
        #: monotonic time at which the last mapped frame was live
        self.last_wall = 0.0

    def new_segment(self) -> None:
        self._anchor = None
        self._last_in = None

    def timeline_s(self, pts_seconds: float) -> float | None:
        """Where a time of the current connection's clock (an audio packet's) lands on the
        output timeline, in seconds; None until the connection's first frame is mapped."""
        if self._anchor is None:
            return None
        anchor_in, anchor_out, _ = self._anchor
        return float(anchor_out * TIME_BASE) + pts_seconds - anchor_in

    def map(self, pts_seconds: float | None, now: float) -> int:
        if self._anchor is None or pts_seconds is None or pts_seconds <= (self._last_in or -1e18):
            start = 0
            if self._last_out is not None:
                start = self._last_out + max(1, round((now - self.last_wall) / TIME_BASE))
            self._anchor = None if pts_seconds is None else (pts_seconds, start, now)
            out, wall = start, now
        else:
            anchor_in, anchor_out, anchor_wall = self._anchor
            out = anchor_out + round((pts_seconds - anchor_in) / TIME_BASE)
            out = max(out, self._last_out + 1)
            wall = min(now, anchor_wall + (pts_seconds - anchor_in))
        self._last_in = pts_seconds
        self._last_out = out
        self.last_wall = wall
        return out


def backoff_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    base = min(max_s, initial_s * (2**attempt))
    return base / 2 + random.uniform(0, base / 2)


def is_server_error(err: BaseException) -> bool:
    """A 5XX answer (RTSP or HTTP): the server is there but cannot serve the stream now."""
    reason = getattr(err, "strerror", None) or ""
    return isinstance(err, av.error.HTTPServerError) or "5XX" in reason


def describe_open_error(err: BaseException, elapsed_s: float, timeout_s: float) -> str:
    """Turn FFmpeg's error into the cause a user can act on (never includes the URL)."""
    code = getattr(err, "errno", None)
    # FFmpeg's own words only: str(err) also holds the URL, whose port or path may contain
    # "404" or "401" (a silent host on port 40417 once read as "not found").
    reason = getattr(err, "strerror", None) or str(err)
    status = re.search(r"\b(401|403|404)\b", reason)
    status_code = status.group(1) if status else None
    if isinstance(err, av.error.HTTPUnauthorizedError) or status_code == "401":
        return "unauthorized (401): wrong user name or password"
    if isinstance(err, av.error.HTTPForbiddenError) or status_code == "403":
        return "forbidden (403): this account may not open that stream"
    if isinstance(err, av.error.HTTPNotFoundError) or status_code == "404":
        return "not found (404): wrong path or stream name"
    if is_server_error(err):
        return f"server error (5XX) for {timeout_s:g} s: the camera is busy or cannot serve it"
    if code == errno.ECONNREFUSED:
        return "connection refused: nothing is listening on that host and port"
    if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "host unreachable: check the address, cable and firewall"
    if isinstance(err, av.error.ExitError) or elapsed_s >= timeout_s * 0.9:
        return f"timed out after {timeout_s:g} s: the host accepted no stream (silent or busy)"
    if code == errno.ETIMEDOUT:
        return f"timed out after {timeout_s:g} s"
    if "resolve" in reason.lower() or "name or service" in reason.lower():
        return "unknown host name"
    return f"cannot open: {redact(reason)}"


class StreamStalled(Exception):
    """Packets keep coming but no picture was decoded for longer than the read timeout."""


class NetworkSource(Source):
    live = True

    def __init__(self, url: str, options: SourceOptions) -> None:
        super().__init__()
        self.url = url
        self.options = options
        self.scheme = urlsplit(url).scheme.lower()
        self._container: av.container.InputContainer | None = None
        self._stream = None
        self._audio_stream = None
        self._clock = PtsRebaser()
        self._seq = 0
        self._started = time.monotonic()
        self._gaps: list[dict] = []  # replaced, never mutated: stats() reads it from any thread
        self._gap_total_s = 0.0
        self._errors = 0
        self._last_error: str | None = None
        self._is_vod = False
        self._last_frame_ts: float | None = None

    # -- opening -------------------------------------------------------------------------
    def _ffmpeg_options(self) -> dict[str, str]:
        micros = str(int(self.options.timeout_s * 1_000_000))
        # low_delay: no decoder frame reordering delay. Not fflags=nobuffer: it throws away
        # the packets read while probing, so the first picture waits for the next keyframe.
        # A short analyzeduration caps probing (FFmpeg's 5 s default delays the start ~1 s).
        opts = {"flags": "low_delay", "analyzeduration": "500000"}
        if self.scheme in ("rtsp", "rtsps"):
            opts |= {"rtsp_transport": self.options.rtsp_transport, "timeout": micros}
        elif self.scheme in ("udp", "srt"):
            opts["timeout"] = micros
        else:  # http(s), rtmp, anything on top of AVIO
            opts["rw_timeout"] = micros
        if self.scheme in ("http", "https"):
            opts["reconnect"] = "0"  # we reconnect ourselves, with backoff and a gap record
        return opts

    def _connect(self) -> None:
        timeout = self.options.timeout_s
        container = av.open(self.url, options=self._ffmpeg_options(), timeout=(timeout, timeout))
        try:
            if not container.streams.video:
                raise SourceError(f"{self.describe()}: the stream has no video track")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.flags |= av.codec.context.Flags.low_delay
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream
        self._audio_stream = None
        if self.options.audio and container.streams.audio:
            self._audio_stream = container.streams.audio[0]
            if self.audio is None:  # outputs copy the first connection's parameters
                self.audio = AudioTrack(self._audio_stream)
        rate = stream.average_rate or stream.guessed_rate
        if rate and not self.fps:
            self.fps = float(rate)
        self.frame_size = decoded_size(stream.codec_context, self.options.size)
        # A finite duration over HTTP is a file, not a camera: its EOF is the end.
        self._is_vod = self.scheme in ("http", "https") and container.duration is not None

    def open(self) -> None:
        """Connect; a server error (5XX: a camera at its client limit, a media server still
        preparing the stream) is asked again until ``timeout_s`` has passed, every other
        failure is reported at once."""
        self.state = SourceState.CONNECTING
        started = time.monotonic()
        for attempt in itertools.count():
            try:
                self._connect()
                break
            except SourceError:
                self.state = SourceState.FAILED
                raise
            except (av.FFmpegError, OSError) as err:
                elapsed = time.monotonic() - started
                if is_server_error(err) and elapsed < self.options.timeout_s:
                    wait = backoff_delay(attempt, OPEN_RETRY_S, self.options.timeout_s / 2)
                    time.sleep(min(wait, self.options.timeout_s - elapsed))
                    continue
                self.state = SourceState.FAILED
                cause = describe_open_error(err, elapsed, self.options.timeout_s)
                raise SourceError(f"cannot open {self.describe()}: {cause}") from None
        self.state = SourceState.LIVE

    def _close_container(self) -> None:
        if self._container is not None:
            # A dead connection may fail to close cleanly; it is gone either way.
            with contextlib.suppress(av.FFmpegError, OSError):
                self._container.close()
            self._container = self._stream = None

    # -- reading -------------------------------------------------------------------------
    def _decode(self, stop: threading.Event, discontinuity: bool) -> Iterator[Frame]:
        size = self.options.size
        last_picture = time.monotonic()
        audio = self._audio_stream if self.audio else None
        for packet in self._container.demux(*(s for s in (self._stream, audio) if s)):
            if stop.is_set():
                return
            if audio is not None and packet.stream is audio:
                seconds = None
                if packet.pts is not None:
                    seconds = self._clock.timeline_s(float(packet.pts * packet.time_base))
                if seconds is not None:  # (none before this connection's first picture)
                    self.audio.push(seconds, packet)
                continue
            for decoded in packet.decode():
                now = time.monotonic()
                last_picture = now
                if decoded.rotation:  # turned upright first: --size is the upright size
                    image = upright(decoded.to_ndarray(format="rgb24"), decoded.rotation)
                    if size and (image.shape[1], image.shape[0]) != size:
                        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                elif size:
                    image = decoded.to_ndarray(width=size[0], height=size[1], format="rgb24")
                else:
                    image = decoded.to_ndarray(format="rgb24")
                pts_s = None if decoded.pts is None else float(decoded.pts * decoded.time_base)
                self._seq += 1
                pts = self._clock.map(pts_s, now)
                self._last_frame_ts = self._clock.last_wall
                yield Frame(
                    image=image,
                    seq=self._seq,
                    pts=pts,
                    time_base=TIME_BASE,
                    capture_ts=now,
                    discontinuity=discontinuity,
                )
                discontinuity = False
            if time.monotonic() - last_picture > self.options.timeout_s:
                raise StreamStalled(f"no picture for {self.options.timeout_s:g} s")

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        if self._container is None:
            self.open()
        discontinuity = False
        while not stop.is_set():
            reason = "stream ended"
            try:
                yield from self._decode(stop, discontinuity)
            except (av.FFmpegError, OSError, StreamStalled) as err:
                reason = self._read_error(err)
            if stop.is_set():
                break
            if self._is_vod and reason == "stream ended":
                break
            self._close_container()
            # Time lost runs from the last picture, including the wait to notice the loss.
            lost_at = self._last_frame_ts or time.monotonic()
            self._reconnect(stop, reason)
            if stop.is_set():
                break
            self._record_gap(lost_at, reason)
            self._clock.new_segment()
            discontinuity = True
        self._close_container()
        self.state = SourceState.ENDED

    def _read_error(self, err: BaseException) -> str:
        """What happened to a stream that stopped, in the user's terms."""
        if isinstance(err, av.error.ExitError):  # PyAV's interrupt: our read timeout fired
            return f"read timeout: no data for {self.options.timeout_s:g} s"
        return redact(getattr(err, "strerror", None) or str(err))

    def _reconnect(self, stop: threading.Event, reason: str) -> None:
        """Reopen with backoff until it works, ``stop`` is set, or the attempts run out."""
        self.state = SourceState.RECONNECTING
        self._errors += 1
        self._last_error = reason
        limit = self.options.reconnect_max
        attempt = 0
        while not stop.is_set():
            if limit is not None and attempt >= limit:
                self.state = SourceState.FAILED
                raise SourceError(
                    f"{self.describe()}: stream lost ({reason}); "
                    f"gave up after {attempt} reconnect attempt(s)"
                )
            delay = backoff_delay(
                attempt, self.options.backoff_initial_s, self.options.backoff_max_s
            )
            if stop.wait(delay):
                return
            attempt += 1
            try:
                self._connect()
            except (av.FFmpegError, OSError, SourceError) as err:
                self._last_error = redact(getattr(err, "strerror", None) or str(err))
                continue
            self.reconnects += 1
            self.state = SourceState.LIVE
            return

    def _record_gap(self, lost_at: float, reason: str) -> None:
        lost_s = time.monotonic() - lost_at
        self._gap_total_s += lost_s
        gap = {
            "at_s": round(lost_at - self._started, 3),
            "lost_s": round(lost_s, 3),
            "reason": reason,
        }
        self._gaps = [*self._gaps[-(GAPS_KEPT - 1) :], gap]

    def close(self) -> None:
        self._close_container()

    def describe(self) -> str:
        transport = f" ({self.options.rtsp_transport})" if self.scheme.startswith("rtsp") else ""
        return f"{redact(self.url)}{transport}"

    def stats(self) -> dict:
        return {
            "state": self.state.value,
            "reconnects": self.reconnects,
            "errors": self._errors,
            "last_error": self._last_error,
            "gap_total_s": round(self._gap_total_s, 3),
            "gaps": self._gaps,
        }
