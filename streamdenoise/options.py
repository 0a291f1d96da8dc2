"""Source and sink settings of a run; their defaults come from :mod:`streamdenoise.settings`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from streamdenoise.access import TOKEN_ENV
from streamdenoise.settings import default, pick


@dataclass
class SourceOptions:
    #: Requested capture size (cameras) or resize target (everything else); None = native.
    size: tuple[int, int] | None = None
    #: Requested camera frame rate; None = device default.
    fps: float | None = None
    #: Seconds any single open or read may block before the source treats it as lost.
    timeout_s: float = default("timeout")
    #: Reconnect attempts before a live source gives up; None = unlimited.
    reconnect_max: int | None = None
    #: Exponential backoff between reconnects: first delay and cap, in seconds.
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    rtsp_transport: str = "tcp"
    #: Read the source's first audio stream and pass it to file and restream outputs.
    audio: bool = True
    #: Replay a file source forever (demo and soak tests).
    loop: bool = default("loop")
    #: Pace file playback at its native frame rate (simulate a live camera).
    realtime: bool = default("realtime")


@dataclass
class SinkOptions:
    #: Video bitrate for encoded outputs, bits/s; None = quality-based (CRF) for files.
    bitrate: int | None = None
    #: Keyframe interval in frames; None = about 2 s.
    gop: int | None = None
    #: libx264 preset for files (restreams always use ultrafast + zerolatency).
    preset: str = default("preset")
    crf: int = default("crf")
    #: Address the HTTP preview server binds to.
    bind: str = default("bind")
    #: Secret a client of the HTTP preview must present; required for a non-loopback bind.
    token: str | None = None
    #: Replace output files that already exist (else refuse, as ffmpeg does without -y).
    overwrite: bool = default("overwrite")
    #: Show noisy | denoised side by side (display and preview).
    compare: bool = default("compare")


def stage_options(settings: dict) -> tuple[SourceOptions, SinkOptions]:
    """The source's and the sinks' options from resolved settings (``run`` and ``serve``)."""
    source = SourceOptions(
        timeout_s=settings["timeout"],
        audio=not settings.get("no_audio", False),
        **pick(settings, "size", "fps", "reconnect_max", "loop", "realtime"),
    )
    sink = SinkOptions(
        token=settings.get("token") or os.environ.get(TOKEN_ENV) or None,
        overwrite=settings.get("overwrite", False),
        **pick(settings, "bitrate", "gop", "preset", "crf", "bind", "compare"),
    )
    return source, sink
