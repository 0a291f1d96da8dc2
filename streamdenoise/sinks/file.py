"""Video files (.mp4 .mkv .ts .mov): H.264 via libx264, written to survive interruptions.

MP4/MOV are written fragmented (``frag_keyframe+empty_moov+default_base_moof``): the index
is at the front and each GOP is a self-contained fragment, so even a killed process leaves a
file that plays up to its last complete fragment. MKV and MPEG-TS are robust by design.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

import av

from streamdenoise.audio import AudioWriter
from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.settings import resolve_preset
from streamdenoise.sinks import check_overwrite
from streamdenoise.sinks.base import Sink
from streamdenoise.sinks.video_encoder import VideoEncoder

FILE_SUFFIXES = (".mp4", ".mkv", ".ts", ".mov")
_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts"}
_FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
#: Containers that store B-frame reordering without shifting timestamps; the others are
#: written without B-frames so that the first frame keeps its source timestamp.
_B_FRAMES_OK = ("matroska",)


def muxer(path: Path) -> tuple[str, dict[str, str]]:
    """(FFmpeg format, muxer options) this sink writes ``path`` with, from its suffix."""
    fmt = _FORMATS[path.suffix.lower()]
    return fmt, (_FRAGMENTED if fmt in ("mp4", "mov") else {})


class FileSink(Sink):
    """Never replaces an existing file unless ``options.overwrite``; never leaves a file
    without a frame in it; counts as written only frames whose packets reached the file."""

    lossless = True
    accepts_audio = True

    def __init__(self, path: str | Path, options: SinkOptions) -> None:
        self.path = Path(path)
        self.options = options
        self.x264_preset = options.preset
        self._container = None
        self._file: _CheckedFile | None = None
        self._encoder: VideoEncoder | None = None
        self._audio: AudioWriter | None = None
        self._created = False
        self._failed = False
        self._frames_in_file: int | None = None  # counted from the file after a failure
        check_overwrite(self.path, options.overwrite)
        if not self.path.parent.is_dir():
            raise SinkError(f"cannot write {self.path}: folder {self.path.parent} does not exist")

    def open(self, first: Frame, fps: float | None) -> None:
        check_frame_size(first)
        fmt, options = muxer(self.path)
        try:
            # Created here, exclusively unless overwriting: a file that appeared since the
            # start is not clobbered.
            self._file = _CheckedFile(self.path, "w" if self.options.overwrite else "x")
            self._created = True
            self._container = av.open(self._file, "w", format=fmt, options=options)
        except FileExistsError:
            raise SinkError(
                f"output {self.path} already exists; pass -y/--overwrite to replace it"
            ) from None
        except (OSError, av.FFmpegError) as err:
            self._remove_empty()
            raise SinkError(f"cannot write {self.path}: {_reason(err)}") from None
        self.x264_preset = resolve_preset(self.x264_preset)
        self._encoder = VideoEncoder(
            self._container,
            first.width,
            first.height,
            fps,
            dataclasses.replace(self.options, preset=self.x264_preset),
            b_frames=fmt in _B_FRAMES_OK,
        )
        if self.audio_input is not None:
            self._audio = AudioWriter(self._container, *self.audio_input, self._encoder)

    def write(self, frame: Frame) -> None:
        try:
            self._encoder.encode(frame)
            if self._audio is not None:
                self._audio.catch_up()
            self._file.check()  # FFmpeg does not report a failed write to the muxing call
        except (OSError, av.FFmpegError) as err:
            self._failed = True
            raise SinkError(f"cannot write {self.path}: {_reason(err)}") from None

    def close(self) -> None:
        if self._container is None:
            self._remove_empty()
            return
        error: BaseException | None = None
        try:
            if self._encoder is not None and not self._failed:
                self._encoder.flush()
                if self._audio is not None:
                    self._audio.finish()
            self._container.close()
            self._file.check()
        except (OSError, av.FFmpegError) as err:
            error = err
        finally:
            self._container = None
            with contextlib.suppress(OSError):
                self._file.close()
        if error is not None or self._failed:
            self._frames_in_file = _count_frames(self.path)
        self._remove_empty()
        if error is not None and not self._failed:
            self._failed = True
            raise SinkError(f"cannot write {self.path}: {_reason(error)}")

    def _remove_empty(self) -> None:
        """A file this sink created that holds no frame is no output: delete it."""
        if not self._created or self.frames_written:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._created = False

    @property
    def frames_written(self) -> int:
        if self._frames_in_file is not None:
            return self._frames_in_file
        return self._encoder.packets_muxed if self._encoder else 0

    def describe(self) -> str:
        return str(self.path)

    def stats(self) -> dict:
        encoded = self._encoder.frames_encoded if self._encoder else 0
        stats = {
            "frames_written": self.frames_written,
            "frames_encoded": encoded,
            "x264_preset": self.x264_preset,
        }
        if self._audio is not None:
            stats["audio"] = self._audio.stats()
        return stats


class _CheckedFile(io.FileIO):
    """The output file, remembering the first failed write (disk full, I/O error): FFmpeg
    keeps that error inside its I/O context, so the muxing call that hit it returns fine."""

    error: OSError | None = None

    def write(self, data) -> int:
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):
            try:
                done += super().write(view[done:]) or 0
            except OSError as err:
                self.error = self.error or err
                raise
        return done

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def check_frame_size(frame: Frame) -> None:
    """H.264 in 4:2:0 needs at least 2×2 pixels; say so instead of leaving an empty file."""
    if frame.width < 2 or frame.height < 2:
        size = f"{frame.width}x{frame.height}"
        raise SinkError(f"cannot encode {size} frames: H.264 needs 2x2 pixels or more")


def _reason(err: BaseException) -> str:
    """The OS or FFmpeg reason without the file name PyAV appends."""
    text = getattr(err, "strerror", None) or str(err)
    return str(text).split(": '")[0].strip()


def _count_frames(path: Path) -> int:
    """Frames a player can decode back from ``path`` (0 if it cannot be opened)."""
    count = 0
    try:
        with av.open(str(path)) as container:
            if container.streams.video:
                for packet in container.demux(container.streams.video[0]):
                    with contextlib.suppress(av.InvalidDataError):
                        count += len(packet.decode())
    except (OSError, av.FFmpegError):
        pass  # a damaged end: what was decoded before it counts
    return count
