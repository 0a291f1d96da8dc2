"""Sink selection from an ``-o`` output string; each kind lives in its own module."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from streamdenoise.errors import SinkError, UsageError
from streamdenoise.options import SinkOptions
from streamdenoise.redact import redact
from streamdenoise.sinks.base import Sink

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


def open_sink(spec: str, options: SinkOptions) -> Sink:
    """The Sink for output string ``spec`` (opened lazily by the pipeline with the first frame)."""
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
    if kind == "restream":
        return _lazy("streamdenoise.sinks.restream", "RestreamSink", spec, options)
    return _lazy("streamdenoise.sinks.preview", "PreviewSink", spec, options)


__all__ = ["ACCEPTED", "Sink", "open_sink", "sink_kind"]
