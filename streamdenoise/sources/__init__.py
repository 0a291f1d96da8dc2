"""Source selection from the SOURCE argument; each kind lives in its own module."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from streamdenoise.errors import SourceError, UsageError
from streamdenoise.options import SourceOptions
from streamdenoise.redact import redact
from streamdenoise.sources.base import Source, SourceState
from streamdenoise.urls import check_url

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp", "srt", "rtmp")
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
_VIDEO_DEVICE = re.compile(r"^/dev/video\d+$")


def _network_source(url: str, options: SourceOptions) -> Source:
    try:
        module = importlib.import_module("streamdenoise.sources.network")
    except ModuleNotFoundError as err:
        if err.name != "streamdenoise.sources.network":
            raise
        raise SourceError("network sources are not available in this installation") from None
    return module.NetworkSource(url, options)


def open_source(spec: str, options: SourceOptions) -> Source:
    """The Source for ``spec`` (not opened yet: the pipeline calls ``open()``).

    ``demo`` | camera index or ``/dev/videoN`` | network URL | image folder | video file.
    """
    match = _SCHEME.match(spec)
    if match:
        scheme = match["scheme"].lower()
        if scheme in NETWORK_SCHEMES:
            check_url(spec, "source")
            return _network_source(spec, options)
        if scheme != "file":
            accepted = ", ".join(f"{s}://" for s in NETWORK_SCHEMES)
            raise UsageError(
                f"unsupported source scheme in {redact(spec)!r} (accepted: {accepted},"
                " a file, a folder, a camera index or 'demo')"
            )
        spec = spec[len("file://") :]
    if spec == "demo":
        from streamdenoise.sources.demo import DemoSource

        return DemoSource(options)
    if spec.isdigit() or _VIDEO_DEVICE.match(spec):
        from streamdenoise.sources.camera import CameraSource

        return CameraSource(int(spec) if spec.isdigit() else spec, options)
    path = Path(spec).expanduser()
    if path.is_dir():
        from streamdenoise.sources.images import ImageFolderSource

        return ImageFolderSource(path, options)
    if not path.exists():
        raise SourceError(f"no such file: {spec}")
    from streamdenoise.sources.file import FileSource

    return FileSource(path, options)


__all__ = ["NETWORK_SCHEMES", "Source", "SourceState", "open_source"]
