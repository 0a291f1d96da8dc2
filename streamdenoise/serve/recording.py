"""Segmented recordings: one playable file per ``segment`` seconds, retention, no overwrite.

Each segment is an ordinary :class:`~streamdenoise.sinks.file.FileSink` file with its own
encoder, so it starts on a keyframe, carries its own header and plays on its own. A frame
belongs to exactly one segment: the one open when it arrives; the first frame at or past a
segment's length closes that segment and opens the next. Names come from a strftime
pattern (``{camera}`` is the camera's name) at the moment a segment opens; a name already
taken on disk gets ``-1``, ``-2``... before its suffix: nothing is ever overwritten (the
file is created exclusively). Retention runs after each segment is closed: segments older
than ``keep`` go first, then the oldest while the camera's total is above ``max_size``.
Only files the pattern could have produced are touched, never the one being written.

A recording at ``preset: auto`` asks for the x264 preset at each segment it opens: the
shared ``model: auto`` denoiser chooses again as cameras come and go (an encoder cannot
change preset inside a file, but each segment has its own).

A writer that dies (killed, power lost, its cluster node gone) cannot finalize its segment,
and a file cut off mid-packet does not decode to its end. So while a segment is open a
journal next to the recordings (``.CAMERA.recording``, in the pattern's fixed folder) names
it; the next recorder of that camera finds the journal and :func:`salvage` rewrites that
segment with the packets that decode (nothing is re-encoded). The camera then records into
new segments, as always.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.serve.config import RecordConfig
from streamdenoise.settings import AUTO_PRESET, resolve_preset
from streamdenoise.sinks.base import Sink
from streamdenoise.sinks.file import FileSink, muxer

log = logging.getLogger(__name__)

#: strftime directives and what their output may look like in a file name.
_DIRECTIVE = re.compile(r"%.")


def _pattern_regex(pattern: str) -> re.Pattern:
    """A regex matching every name ``pattern`` (camera already filled in) can produce,
    including the ``-N`` added to avoid a collision."""
    stem, suffix = os.path.splitext(pattern)
    parts, last = [], 0
    for match in _DIRECTIVE.finditer(stem):
        parts.append(re.escape(stem[last : match.start()]))
        parts.append("%" if match[0] == "%%" else r"[^/]+?")
        last = match.end()
    parts.append(re.escape(stem[last:]))
    return re.compile("".join(parts) + r"(?:-\d+)?" + re.escape(suffix) + "$")


def _fixed_root(pattern: str) -> Path:
    """The deepest folder of ``pattern`` that no strftime directive changes."""
    root = Path()
    for part in Path(pattern).parts[:-1]:
        if "%" in part:
            break
        root = root / part
    return root


class SegmentedRecorder(Sink):
    """A lossless sink writing ``config.segment_s``-second files named by ``config.path``."""

    lossless = True

    def __init__(self, camera: str, config: RecordConfig, options: SinkOptions) -> None:
        self.camera = camera
        self.config = config
        self.options = options
        self.x264_preset = options.preset
        #: Segments opened at each x264 preset.
        self.presets: dict[str, int] = {}
        self._follows_choice = options.preset == AUTO_PRESET
        self._chosen: Callable[[], str | None] = lambda: None
        self.pattern = config.path.replace("{camera}", camera)
        self.root = _fixed_root(self.pattern)
        self._regex = _pattern_regex(str(Path(self.pattern)))
        self._fps: float | None = None
        self._segment: FileSink | None = None
        self._segment_start: float | None = None
        self.current: Path | None = None
        self.segments = 0
        self.frames = 0
        self.deleted = 0
        self.deleted_bytes = 0
        self.last_closed: Path | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinkError(f"cannot create recording folder {self.root}: {err.strerror}") from None
        self.journal = self.root / f".{camera}.recording"
        self._recover()

    # -- Sink --------------------------------------------------------------------------------
    def take_preset(self, chosen: Callable[[], str | None]) -> None:
        """At ``auto``: asked again at each segment."""
        if self._follows_choice:
            self._chosen = chosen

    @property
    def x264_choice(self) -> str | None:
        return AUTO_PRESET if self._follows_choice else self.x264_preset

    def open(self, first: Frame, fps: float | None) -> None:
        self._fps = fps

    def write(self, frame: Frame) -> None:
        now = _frame_time(frame)
        if self._segment is not None and now - self._segment_start >= self.config.segment_s:
            self._close_segment()
            self._enforce_retention()
        if self._segment is None:
            self._open_segment(frame, now)
        self._segment.write(frame)
        self.frames += 1

    def close(self) -> None:
        self._close_segment()
        self._enforce_retention()

    def describe(self) -> str:
        return f"segments {self.pattern} every {self.config.segment_s:g} s"

    def stats(self) -> dict:
        return {
            "segments": self.segments,
            "frames": self.frames,
            "current": str(self.current) if self.current else None,
            "deleted": self.deleted,
            "deleted_bytes": self.deleted_bytes,
            "x264_preset": self.x264_preset,
            "segments_per_x264_preset": dict(self.presets),
        }

    # -- segments ------------------------------------------------------------------------------
    def _open_segment(self, first: Frame, now: float) -> None:
        if self._follows_choice:
            self.x264_preset = resolve_preset(AUTO_PRESET, self._chosen())
        path = self._reserve(Path(time.strftime(self.pattern)))
        self._write_journal(path)
        # the reserved (empty) file is this recorder's own: the sink may write over it
        options = dataclasses.replace(self.options, overwrite=True, preset=self.x264_preset)
        segment = FileSink(path, options)
        try:
            segment.open(first, self._fps)
        except BaseException:
            path.unlink(missing_ok=True)  # no empty file left behind
            self.journal.unlink(missing_ok=True)
            raise
        self._segment, self._segment_start, self.current = segment, now, path
        self.segments += 1
        self.presets[self.x264_preset] = self.presets.get(self.x264_preset, 0) + 1

    def _reserve(self, path: Path) -> Path:
        """``path``, or the first free ``path-N``; created empty, exclusively, so that no
        other writer (another camera, another process) can take it meanwhile."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SinkError(f"cannot create folder {path.parent}: {err.strerror}") from None
        candidate, n = path, 0
        while True:
            try:
                with open(candidate, "xb"):
                    return candidate
            except FileExistsError:
                n += 1
                candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
            except OSError as err:
                raise SinkError(f"cannot write {candidate}: {err.strerror}") from None

    def _close_segment(self) -> None:
        if self._segment is None:
            return
        segment, self._segment = self._segment, None
        self.last_closed, self.current = self.current, None
        segment.close()
        self.journal.unlink(missing_ok=True)

    # -- a segment its writer never closed ---------------------------------------------------
    def _write_journal(self, path: Path) -> None:
        staged = self.journal.with_suffix(".tmp")
        try:
            staged.write_text(str(path.absolute()))
            os.replace(staged, self.journal)
        except OSError as err:
            raise SinkError(f"cannot write {self.journal}: {err.strerror}") from None

    def _recover(self) -> None:
        try:
            path = Path(self.journal.read_text().strip())
        except OSError:  # no journal: the last writer closed its segment
            return
        if path.is_file():
            kept = salvage(path)
            if kept:
                log.warning("recording %s: salvaged %s, cut short (%d frames kept)", self.camera,
                            path.name, kept)  # fmt: skip
            else:
                log.warning("recording %s: removed %s, cut short before its first frame",
                            self.camera, path.name)  # fmt: skip
        self.journal.unlink(missing_ok=True)

    # -- retention -----------------------------------------------------------------------------
    def segments_on_disk(self) -> list[tuple[Path, os.stat_result]]:
        """This camera's finished segments, oldest first."""
        found = []
        if not self.root.is_dir():
            return found
        for path in self.root.rglob("*"):
            if path == self.current or not self._regex.search(str(path)):
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            if path.is_file():
                found.append((path, info))
        found.sort(key=lambda item: item[1].st_mtime)
        return found

    def _enforce_retention(self) -> None:
        keep, cap = self.config.keep_s, self.config.max_size
        if keep is None and cap is None:
            return
        segments = self.segments_on_disk()
        total = sum(info.st_size for _, info in segments)
        if self.current is not None and self.current.exists():
            total += self.current.stat().st_size
        now = time.time()
        for path, info in segments:
            too_old = keep is not None and now - info.st_mtime > keep
            too_big = cap is not None and total > cap
            if not (too_old or too_big):
                break
            try:
                path.unlink()
            except OSError as err:
                log.warning("recording %s: cannot delete %s: %s", self.camera, path, err.strerror)
                continue
            total -= info.st_size
            self.deleted += 1
            self.deleted_bytes += info.st_size
            self._remove_empty_folders(path.parent)

    def _remove_empty_folders(self, folder: Path) -> None:
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or not ours to remove)
            folder = folder.parent


def salvage(path: Path) -> int:
    """Make a segment whose writer died play to its end: the packets before the first one
    that does not decode, remuxed into the same container (no re-encoding; an MP4 whose last
    fragment was cut may not even open for a player until it is rewritten). Returns the video
    frames kept; a file without any is removed."""
    import av

    fmt, options = muxer(path)
    try:
        # read front to back: a seekable MP4 is indexed at open, and a cut fragment fails it
        source = av.open(_Unseekable(path.open("rb")), format=fmt)
    except (av.FFmpegError, OSError):
        path.unlink(missing_ok=True)  # not even a header: nothing to keep
        return 0
    with source:
        if not source.streams.video:
            path.unlink(missing_ok=True)
            return 0
        packets = []
        with contextlib.suppress(av.FFmpegError, OSError):  # keep what came before the damage
            for packet in source.demux():
                if packet.size:
                    packets.append(packet)
        keep = _decodable(source, packets)
        kept = sum(1 for p in packets[:keep] if p.stream.type == "video")
        if not kept:
            source.close()
            path.unlink(missing_ok=True)
            return 0
        staged = path.with_name(f".{path.name}.salvage")
        with av.open(str(staged), "w", format=fmt, options=options) as out:
            streams = {}
            for stream in source.streams:
                if stream.type in ("video", "audio"):
                    streams[stream.index] = out.add_stream_from_template(stream)
            for packet in packets[:keep]:
                if packet.stream.index in streams:
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    os.replace(staged, path)
    return kept


class _Unseekable(io.RawIOBase):
    """A file read strictly front to back."""

    def __init__(self, file) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._file.readinto(buffer)

    def close(self) -> None:
        self._file.close()
        super().close()


def _decodable(source, packets: list) -> int:
    """How many of ``packets`` (in file order) come before the first video packet that does
    not decode. Decoding starts at the last keyframe: every GOP is closed, so the damage of a
    cut can only be after it."""
    import av

    index = source.streams.video[0].index
    video = [i for i, p in enumerate(packets) if p.stream.index == index]
    keys = [i for i in video if packets[i].is_keyframe]
    if not keys:
        return 0
    stream = packets[keys[-1]].stream
    decoder = av.CodecContext.create(stream.codec_context.name, "r")
    decoder.extradata = stream.codec_context.extradata
    decoder.thread_count = 1  # an error surfaces at its own packet, not at a later one
    for i in video:
        if i < keys[-1]:
            continue
        try:
            decoder.decode(packets[i])
        except av.FFmpegError:
            return i
    return len(packets)


def _frame_time(frame: Frame) -> float:
    """Seconds on the stream's own timeline (its PTS), else its capture time."""
    seconds = frame.pts_seconds
    return frame.capture_ts if seconds is None else seconds
