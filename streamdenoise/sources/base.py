"""The interface every frame source implements; the pipeline runs it on the capture thread."""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from streamdenoise.audio import AudioTrack
from streamdenoise.frame import Frame


def decoded_size(codec, requested: tuple[int, int] | None) -> tuple[int, int] | None:
    """Size of the frames a PyAV decoder will yield: the resize target if one was asked for,
    else what the stream declares (None when it declares nothing)."""
    if requested:
        return requested
    return (codec.width, codec.height) if codec.width and codec.height else None


class SourceState(str, enum.Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


class Source(ABC):
    """A producer of RGB frames.

    Sources own everything about their input, reconnects included: ``frames()`` yields until
    the input ends (EOF) or ``stop`` is set, raising :class:`~streamdenoise.errors.SourceError`
    when it gives up. After a reconnect the first frame has ``discontinuity=True`` and PTS
    keep increasing. No read may block longer than the source's timeout.
    """

    #: Live sources (cameras, network streams) default to the ``latest`` queue policy.
    live: bool = False

    def __init__(self) -> None:
        self.state = SourceState.CONNECTING
        self.reconnects = 0
        #: Nominal frame rate if the input declares one (used by sinks for their time base).
        self.fps: float | None = None
        #: (width, height) of the frames to come when known after open() (None: see the
        #: first frame); ``--model auto`` calibrates for it before streaming starts.
        self.frame_size: tuple[int, int] | None = None
        #: The input's audio, for outputs that pass it through (set by open(); None: none).
        self.audio: AudioTrack | None = None

    @abstractmethod
    def open(self) -> None:
        """Open the input or raise SourceError with one readable (redacted) line."""

    @abstractmethod
    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Yield frames until EOF or ``stop``; sets ``state`` as it goes."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device/connection; safe to call more than once."""

    @abstractmethod
    def describe(self) -> str:
        """Human-readable name with credentials redacted."""

    def stats(self) -> dict:
        return {"state": self.state.value, "reconnects": self.reconnects}


def upright(image: np.ndarray, rotation: float | None) -> np.ndarray:
    """``image`` turned the way its display matrix says to show it (phone clips are stored
    sideways with a rotation tag), so every output plays the right way up without it.

    ``rotation`` is PyAV's ``VideoFrame.rotation``: degrees counter-clockwise, a multiple of 90.
    """
    turns = round((rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image
