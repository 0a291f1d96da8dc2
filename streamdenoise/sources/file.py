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

from streamdenoise.errors import SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SourceOptions
from streamdenoise.sources.base import Source, SourceState, decoded_size

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
            for image, pts, time_base in self._decode(stop):
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
            if stop.is_set() or not self.options.loop or last_seconds is None:
                break
            pts_offset += last_seconds - (first_pts or 0.0) + 1 / (self.fps or 25)
            self._container.seek(0, stream=self._stream)
            discontinuity = True
        if seq == 0 and not stop.is_set():
            self.state = SourceState.FAILED
            raise SourceError(f"no decodable video frames in {self.path}")
        self.state = SourceState.ENDED

    def _decode(self, stop: threading.Event) -> Iterator[tuple]:
        """(RGB image, pts, time_base) per frame; corruption mid-file ends the file, logged."""
        size = self.options.size
        time_base = self._stream.time_base or Fraction(1, 90000)
        try:
            for packet in self._container.demux(self._stream):
                if stop.is_set():
                    return
                try:
                    decoded = packet.decode()
                except av.InvalidDataError as err:
                    log.warning("%s: skipping a corrupt packet (%s)", self.path, _reason(err))
                    continue
                for frame in decoded:
                    image = frame.to_ndarray(format="rgb24")
                    if size and (image.shape[1], image.shape[0]) != size:
                        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                    yield image, frame.pts, frame.time_base or time_base
        except av.FFmpegError as err:
            log.warning("%s: stopped reading at a damaged part (%s)", self.path, _reason(err))

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def describe(self) -> str:
        return str(self.path)
