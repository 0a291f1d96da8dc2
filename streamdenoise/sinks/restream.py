"""Push the denoised stream to a media server: RTSP (ANNOUNCE/RECORD), RTMP (FLV), UDP/SRT (TS).

A restream must never fail silently and never stall the pipeline or its shutdown. So the
connection lives on this sink's own worker thread, fed through a one-frame mailbox: ``write``
only drops the newest frame in and returns. The worker connects under FFmpeg socket timeouts;
a server that is absent, refuses or goes away is logged (redacted), counted and retried with
exponential backoff, and frames arriving meanwhile are dropped and counted. Some FFmpeg
protocols (RTMP's handshake) have no timeout an output can set; a worker stuck that long is
reported as ``stalled``, and ``close`` never waits on it for more than a bounded time.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import av

from streamdenoise.audio import AudioWriter
from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.redact import redact
from streamdenoise.sinks.base import Sink
from streamdenoise.sinks.file import check_frame_size
from streamdenoise.sinks.video_encoder import LIVE_PRESET, VideoEncoder
from streamdenoise.sources.network import backoff_delay
from streamdenoise.urls import with_query_defaults

log = logging.getLogger(__name__)

#: Seconds a connect or a single write may block before the server counts as gone.
IO_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0
_MICROS = str(int(IO_TIMEOUT_S * 1_000_000))
#: Container format, muxer options, and protocol options for each scheme. Protocol options
#: travel in the URL (udp:// and srt:// read them there; options handed to the container
#: never reach the protocol). RTMP has no URL form for its timeout: probe_server bounds it.
FORMATS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "rtsp": ("rtsp", {"rtsp_transport": "tcp", "timeout": _MICROS}, {}),
    "rtsps": ("rtsp", {"rtsp_transport": "tcp", "timeout": _MICROS}, {}),
    "rtmp": ("flv", {}, {}),
    "udp": ("mpegts", {}, {"pkt_size": "1316"}),
    "srt": ("mpegts", {}, {"timeout": _MICROS}),
}


class RestreamSink(Sink):
    lossless = False
    accepts_audio = True
    x264_preset = LIVE_PRESET

    def __init__(self, url: str, options: SinkOptions) -> None:
        self.scheme = urlsplit(url).scheme.lower()
        if self.scheme not in FORMATS:
            raise SinkError(f"unsupported restream URL {redact(url)}")
        self.url = url
        self.options = options
        self.format, self.mux_options, protocol_options = FORMATS[self.scheme]
        self._target = with_query_defaults(url, protocol_options)
        self._state = "idle"
        self._size: tuple[int, int] = (0, 0)
        self._fps: float | None = None
        self._pending: Frame | None = None
        self._wake = threading.Condition()
        self._closing = False
        self._busy_since: float | None = None  # set while the worker is inside FFmpeg
        self._worker = threading.Thread(target=self._run, name="restream", daemon=True)
        self._fatal: SinkError | None = None
        self._stall_reported = False
        self._outage_since: float | None = None
        self._outage_logged = False
        self.frames_offered = 0
        self._audio: AudioWriter | None = None  # the worker's, for the open connection
        self.connects = 0
        self.errors = 0
        self.frames_sent = 0
        self.drops = 0
        self.last_error: str | None = None

    # -- pipeline side (never blocks) -----------------------------------------------------
    def open(self, first: Frame, fps: float | None) -> None:
        check_frame_size(first)
        self._size = (first.width, first.height)
        self._fps = fps
        self._worker.start()

    def write(self, frame: Frame) -> None:
        if self._fatal is not None:
            raise self._fatal
        self._warn_if_stalled()
        self.frames_offered += 1
        with self._wake:
            if self._pending is not None:
                self.drops += 1  # the worker is busy (connecting, backing off, or slow)
            self._pending = frame
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._worker.is_alive():
            self._worker.join(timeout=IO_TIMEOUT_S + 2)
        if self._worker.is_alive():
            log.warning("restream %s: server not answering; left behind", self.describe())
        if self._state != "failed":
            self._state = "closed"
        if self._fatal is not None:
            raise self._fatal
        if self.frames_offered and not self.frames_sent:
            reason = self.last_error or "the server did not take the stream in time"
            raise SinkError(f"no frame delivered ({reason})")

    # -- worker side ------------------------------------------------------------------------
    def _take(self) -> Frame | None:
        """The newest frame, waiting for one; None once closing."""
        with self._wake:
            while self._pending is None and not self._closing:
                self._wake.wait()
            frame, self._pending = self._pending, None
            return frame

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as err:  # a bug or an unforeseen error: the pipeline must hear of it
            self._state = "failed"
            self._fatal = SinkError(redact(f"{type(err).__name__}: {err}"))

    def _loop(self) -> None:
        failures = 0
        retry_at = 0.0
        container = encoder = None
        while True:
            frame = self._take()
            if self._closing:
                break
            if frame is None:
                continue
            if container is None and time.monotonic() < retry_at:
                self.drops += 1
                continue
            try:
                self._busy_since = time.monotonic()
                if container is None:
                    self._state = "connecting"
                    container, encoder = self._connect()
                encoder.encode(frame)  # the first one sends the header (ANNOUNCE/RECORD...)
                if self._audio is not None:
                    self._audio.catch_up()
                self.frames_sent += 1
                if self._state != "live":
                    self._connected()
                    failures = 0
            except av.error.ProtocolNotFoundError:
                self._state = "failed"
                self._fatal = SinkError(f"this FFmpeg build has no {self.scheme}:// protocol")
                return
            except (av.FFmpegError, OSError) as err:
                self.drops += 1
                _close_quietly(container)
                container = encoder = None
                delay = backoff_delay(failures, BACKOFF_INITIAL_S, BACKOFF_MAX_S)
                failures += 1
                retry_at = time.monotonic() + delay
                self._report_failure(err, delay)
            finally:
                self._busy_since = None
        if container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):
                encoder.flush()
                if self._audio is not None:
                    self._audio.finish()
            _close_quietly(container)

    def _connected(self) -> None:
        self.connects += 1
        self._state = "live"
        if self._outage_logged:
            log.warning("restream %s: connected again", self.describe())
        else:
            log.info("restream %s: connected", self.describe())
        self._outage_since, self._outage_logged = None, False

    def _connect(self) -> tuple[av.container.OutputContainer, VideoEncoder]:
        probe_server(self.url)
        container = av.open(self._target, "w", format=self.format, options=self.mux_options)
        try:
            encoder = VideoEncoder(
                container, *self._size, self._fps, self.options, zerolatency=True
            )
            # a new connection starts a new timeline: the audio follows this encoder's
            self._audio = None
            if self.audio_input is not None:
                self._audio = AudioWriter(container, *self.audio_input, encoder)
        except BaseException:
            _close_quietly(container)
            raise
        return container, encoder

    def _report_failure(self, err: BaseException, delay: float) -> None:
        """Counted every time; said once per outage: at once when a live stream is lost, after
        IO_TIMEOUT_S when the server was never reached (a short run then fails with one line
        at the end instead of a warning per retry)."""
        self.errors += 1
        self.last_error = redact(getattr(err, "strerror", None) or str(err))
        self._state = "reconnecting"
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
        if not self._outage_logged and (self.connects or now - self._outage_since >= IO_TIMEOUT_S):
            self._outage_logged = True
            what = "lost" if self.connects else "cannot connect"
            log.warning(
                "restream %s: %s (%s); retrying with backoff", self.describe(), what,
                self.last_error,
            )  # fmt: skip

    def _warn_if_stalled(self) -> None:
        stalled = self.state == "stalled"
        if stalled and not self._stall_reported:
            self.errors += 1
            self.last_error = f"server not answering for over {IO_TIMEOUT_S + 2:g} s"
            log.warning("restream %s: %s; dropping frames", self.describe(), self.last_error)
        self._stall_reported = stalled

    # -- reporting ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > IO_TIMEOUT_S + 2:
            return "stalled"
        return self._state

    def describe(self) -> str:
        return f"{redact(self.url)} ({self.format})"

    def stats(self) -> dict:
        return {
            "state": self.state,
            "connects": self.connects,
            "errors": self.errors,
            "frames_written": self.frames_sent,
            "frames_sent": self.frames_sent,
            "drops": self.drops,
            "last_error": self.last_error,
        }


def probe_server(url: str) -> None:
    """Check that an RTSP/RTMP server answers before FFmpeg connects, with a real timeout.

    PyAV holds the GIL while FFmpeg opens an output (RTMP handshake, RTSP ANNOUNCE), so a
    server that accepts TCP and then stays silent would freeze every thread of the process.
    This Python-side hello (RTSP OPTIONS, RTMP C0+C1) waits without the GIL and raises
    OSError instead.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _HELLO:
        return
    default_port, hello = _HELLO[scheme]
    address = (parts.hostname or "", parts.port or default_port)
    with socket.create_connection(address, timeout=IO_TIMEOUT_S) as conn:
        conn.sendall(hello(parts))
        try:
            reply = conn.recv(16)
        except TimeoutError:
            raise TimeoutError(f"no answer within {IO_TIMEOUT_S:g} s") from None
    if not reply:
        raise ConnectionResetError("server closed the connection at once")


def _rtsp_options(parts) -> bytes:
    target = f"rtsp://{parts.hostname}:{parts.port or 554}{parts.path or '/'}"
    return f"OPTIONS {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode()


def _rtmp_c0c1(_parts) -> bytes:
    return b"\x03" + bytes(1536)


_HELLO = {
    "rtsp": (554, _rtsp_options),
    "rtmp": (1935, _rtmp_c0c1),
}


def _close_quietly(container: av.container.OutputContainer | None) -> None:
    """A dead connection may fail to close cleanly; it is gone either way."""
    if container is not None:
        with contextlib.suppress(av.FFmpegError, OSError):
            container.close()
