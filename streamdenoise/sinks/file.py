"""Video files (.mp4 .mkv .ts .mov): H.264 via libx264, written to survive interruptions.

MP4/MOV are written fragmented (``frag_keyframe+empty_moov+default_base_moof``): the index
is at the front and each GOP is a self-contained fragment, so even a killed process leaves a
file that plays up to its last complete fragment. MKV and MPEG-TS are robust by design.
"""

from __future__ import annotations

from pathlib import Path

import av

from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.sinks.base import Sink
from streamdenoise.sinks.video_encoder import VideoEncoder

FILE_SUFFIXES = (".mp4", ".mkv", ".ts", ".mov")
_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
#: Containers that store B-frame reordering without shifting timestamps; the others are
#: written without B-frames so that the first frame keeps its source timestamp.
_B_FRAMES_OK = ("matroska",)


class FileSink(Sink):
    lossless = True

    def __init__(self, path: str | Path, options: SinkOptions) -> None:
        self.path = Path(path)
        self.options = options
        self._container = None
        self._encoder: VideoEncoder | None = None
        if not self.path.parent.is_dir():
            raise SinkError(f"cannot write {self.path}: folder {self.path.parent} does not exist")

    def open(self, first: Frame, fps: float | None) -> None:
        fmt = _FORMATS[self.path.suffix.lower()]
        options = _FRAGMENTED if fmt in ("mp4", "mov") else {}
        try:
            # PyAV opens the file only when the header is written; fail here, readably.
            self.path.open("wb").close()
            self._container = av.open(str(self.path), "w", format=fmt, options=options)
        except OSError as err:
            raise SinkError(f"cannot write {self.path}: {err.strerror}") from None
        except av.FFmpegError as err:
            raise SinkError(f"cannot write {self.path}: {err}") from None
        self._encoder = VideoEncoder(
            self._container,
            first.width,
            first.height,
            fps,
            self.options,
            b_frames=fmt in _B_FRAMES_OK,
        )

    def write(self, frame: Frame) -> None:
        self._encoder.encode(frame)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self._encoder is not None:
                self._encoder.flush()
        finally:
            self._container.close()
            self._container = None

    def describe(self) -> str:
        return str(self.path)

    def stats(self) -> dict:
        return {"frames_encoded": self._encoder.frames_encoded if self._encoder else 0}
