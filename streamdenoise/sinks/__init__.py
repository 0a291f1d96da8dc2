"""Sink selection from an ``-o`` output string; each kind lives in its own module."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path

from streamdenoise.errors import SinkError, UsageError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.redact import redact
from streamdenoise.sinks.base import Sink
from streamdenoise.urls import check_url

RESTREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "srt")
ACCEPTED = (
    "a file ending in .mp4, .mkv, .ts or .mov; 'display'; 'null'; "
    "rtsp:// rtsps:// rtmp:// udp:// srt:// (restream); http://HOST:PORT (MJPEG preview)"
)
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")


def _lazy(module_name: str, class_name: str, spec: str, options: SinkOptions) -> Sink:
    """Sinks written separately are imported only when asked for."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name != module_name:
            raise
        raise SinkError(f"output {redact(spec)!r} is not available in this installation") from None
    return getattr(module, class_name)(spec, options)


def sink_kind(spec: str) -> str:
    """'file' | 'display' | 'null' | 'restream' | 'preview'; UsageError for anything else."""
    match = _SCHEME.match(spec)
    if match:
        scheme = match["scheme"].lower()
        if scheme in RESTREAM_SCHEMES:
            return "restream"
        if scheme == "http":
            return "preview"
    elif spec in ("display", "null"):
        return spec
    elif Path(spec).suffix.lower() in (".mp4", ".mkv", ".ts", ".mov"):
        return "file"
    raise UsageError(f"unsupported output {redact(spec)!r} (accepted: {ACCEPTED})")


def check_overwrite(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing file unless told to (``-y``), the way ffmpeg does: a
    restart must never destroy the previous recording."""
    try:
        exists = path.exists() or path.is_symlink()
    except OSError as err:  # e.g. a name too long for the file system
        raise SinkError(f"cannot write {path}: {err.strerror}") from None
    if exists and not overwrite:
        raise SinkError(f"output {path} already exists; pass -y/--overwrite to replace it")


#: An output: an output string, a Sink object, or any callable taking a Frame.
Output = str | Sink | Callable[[Frame], object]


def output_name(spec: Output) -> str:
    """How an output is named in reports and logs (credentials redacted)."""
    if isinstance(spec, str):
        return redact(spec)
    if isinstance(spec, Sink):
        return spec.describe()
    from streamdenoise.sinks.callback import callable_name

    return callable_name(spec)


def open_sink(spec: Output, options: SinkOptions) -> Sink:
    """The Sink for output ``spec`` (opened lazily by the pipeline with the first frame)."""
    if isinstance(spec, Sink):
        return spec
    if callable(spec):
        from streamdenoise.sinks.callback import CallbackSink

        return CallbackSink(spec)
    kind = sink_kind(spec)
    if kind == "file":
        from streamdenoise.sinks.file import FileSink

        return FileSink(Path(spec).expanduser(), options)
    if kind == "null":
        from streamdenoise.sinks.null import NullSink

        return NullSink()
    if kind == "display":
        from streamdenoise.sinks.display import DisplaySink

        return DisplaySink(options)
    if kind in ("restream", "preview"):
        check_url(spec, "output")
    if kind == "restream":
        return _lazy("streamdenoise.sinks.restream", "RestreamSink", spec, options)
    return _lazy("streamdenoise.sinks.preview", "PreviewSink", spec, options)


__all__ = ["ACCEPTED", "Output", "Sink", "check_overwrite", "open_sink", "output_name", "sink_kind"]
