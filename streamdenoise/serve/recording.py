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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from pathlib import Path

from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.serve.config import RecordConfig
from streamdenoise.sinks.base import Sink
from streamdenoise.sinks.file import FileSink

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

    # -- Sink --------------------------------------------------------------------------------
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
        }

    # -- segments ------------------------------------------------------------------------------
    def _open_segment(self, first: Frame, now: float) -> None:
        path = self._reserve(Path(time.strftime(self.pattern)))
        # the reserved (empty) file is this recorder's own: the sink may write over it
        segment = FileSink(path, dataclasses.replace(self.options, overwrite=True))
        try:
            segment.open(first, self._fps)
        except BaseException:
            path.unlink(missing_ok=True)  # no empty file left behind
            raise
        self._segment, self._segment_start, self.current = segment, now, path
        self.segments += 1

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


def _frame_time(frame: Frame) -> float:
    """Seconds on the stream's own timeline (its PTS), else its capture time."""
    seconds = frame.pts_seconds
    return frame.capture_ts if seconds is None else seconds
