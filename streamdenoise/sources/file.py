"""Video files (anything PyAV/FFmpeg opens), with optional real-time pacing and looping."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2

from streamdenoise.audio import AudioTrack
from streamdenoise.errors import SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SourceOptions
from streamdenoise.sources.base import Source, SourceState, decoded_size, upright

log = logging.getLogger(__name__)


def _reason(err: BaseException) -> str:
    """FFmpeg's own words without the path PyAV repeats after them."""
    text = getattr(err, "strerror", None) or str(err)
    return text.split(": '")[0].strip()


class FileSource(Source):
    """Decodes the first video stream of a file; PTS and time base come from the file."""

    def __init__(self, path: str | os.PathLike, options: SourceOptions) -> None:
        super().__init__()
        self.path = Path(path)
        self.options = options
        self.live = options.realtime  # a paced file stands in for a live camera
        self._container = None
        self._stream = None
        self._audio_stream = None
        self._corrupt = 0  # packets the decoder rejected in this pass
        self._damaged: str | None = None  # why demuxing stopped early, if it did

    def open(self) -> None:
        if not self.path.exists():
            raise SourceError(f"no such file: {self.path}")
        if self.path.stat().st_size == 0:
            raise SourceError(f"empty file (0 bytes): {self.path}")
        try:
            self._container = av.open(str(self.path), timeout=self.options.timeout_s)
        except av.FFmpegError as err:
            raise SourceError(f"cannot open {self.path}: {_reason(err)}") from None
        if not self._container.streams.video:
            self.close()
            raise SourceError(f"no video stream in {self.path}")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        if self.options.audio and self._container.streams.audio:
            self._audio_stream = self._container.streams.audio[0]
            self.audio = AudioTrack(self._audio_stream)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_size = decoded_size(self._stream.codec_context, self.options.size)
        self.state = SourceState.LIVE

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        assert self._container is not None, "open() first"
        seq = 0
        pts_offset = 0.0  # seconds added on each loop so timestamps keep increasing
        start = time.monotonic()
        first_pts: float | None = None
        discontinuity = False
        while True:
            last_seconds = None
            for image, pts, time_base in self._decode(stop, pts_offset):
                seconds = float(pts * time_base) if pts is not None else seq / (self.fps or 25)
                if first_pts is None:
                    first_pts = seconds
                if self.options.realtime:
                    delay = start + (seconds + pts_offset - first_pts) - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                shifted = None if pts is None else pts + round(pts_offset / time_base)
                yield Frame(
                    image, seq=seq, pts=shifted, time_base=time_base, discontinuity=discontinuity
                )
                discontinuity = False
                last_seconds = seconds
                seq += 1
            self._report_damage(seq)
            if stop.is_set() or not self.options.loop or last_seconds is None:
                break
            pts_offset += last_seconds - (first_pts or 0.0) + 1 / (self.fps or 25)
            self._container.seek(0, stream=self._stream)
            discontinuity = True
        if seq == 0 and not stop.is_set():
            self.state = SourceState.FAILED
            damage = f" ({self._damage_text()})" if self._corrupt or self._damaged else ""
            raise SourceError(f"no decodable video frames in {self.path}{damage}")
        self.state = SourceState.ENDED

    def _damage_text(self) -> str:
        parts = [f"{self._corrupt} corrupt packet(s) skipped"] if self._corrupt else []
        if self._damaged:
            parts.append(f"stopped at a damaged part: {self._damaged}")
        return "; ".join(parts)

    def _report_damage(self, frames: int) -> None:
        """One warning per pass over a damaged file, and none when no frame came out of it
        (the error then says it all, in one line)."""
        if frames and (self._corrupt or self._damaged):
            log.warning("%s: %s", self.path, self._damage_text())
            self._corrupt, self._damaged = 0, None

    def _decode(self, stop: threading.Event, pts_offset: float = 0.0) -> Iterator[tuple]:
        """(RGB image, pts, time_base) per frame; corruption mid-file ends the file; what
        was skipped is counted for one warning (see _report_damage)."""
        size = self.options.size
        time_base = self._stream.time_base or Fraction(1, 90000)
        audio = self._audio_stream
        try:
            for packet in self._container.demux(*(s for s in (self._stream, audio) if s)):
                if stop.is_set():
                    return
                if audio is not None and packet.stream is audio:
                    if packet.pts is not None:  # on the video's clock, loops included
                        self.audio.push(float(packet.pts * packet.time_base) + pts_offset, packet)
                    continue
                try:
                    decoded = packet.decode()
                except av.InvalidDataError:
                    self._corrupt += 1
                    continue
                for frame in decoded:
                    image = upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                    if size and (image.shape[1], image.shape[0]) != size:
                        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                    yield image, frame.pts, frame.time_base or time_base
        except av.FFmpegError as err:
            self._damaged = _reason(err)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def describe(self) -> str:
        return str(self.path)
