"""The interface every output implements; the pipeline gives each sink its own thread."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from streamdenoise.audio import AudioBuffer, AudioTrack
from streamdenoise.frame import Frame
from streamdenoise.settings import AUTO_PRESET, resolve_preset


class Sink(ABC):
    """A consumer of denoised frames.

    ``open`` is called lazily with the first frame (so the size is known), ``write`` for
    every frame, ``close`` exactly once at the end — also after Ctrl+C or a source failure —
    and must leave a finalized, playable output. Sinks that talk to a network server handle
    transient failures themselves (retry with backoff, counted in ``stats``) rather than
    raising, so one dead server never stops the other outputs.
    """

    #: Lossless sinks (files) make the fan-out wait for them; others (display, restream,
    #: preview) drop their oldest queued frame instead, so they never stall the pipeline.
    lossless: bool = False
    #: Sinks that can carry sound set this True; the pipeline then hands them the source's
    #: audio track and this sink's own buffer of it as ``audio_input`` before ``open``.
    accepts_audio: bool = False
    audio_input: tuple[AudioTrack, AudioBuffer] | None = None
    #: The libx264 preset this sink encodes every frame with, None where it runs no x264:
    #: ``--model auto`` leaves the CPU that encoding takes to the encoders. ``auto`` until
    #: :meth:`take_preset`, before ``open``.
    x264_preset: str | None = None

    def take_preset(self, chosen: Callable[[], str | None]) -> None:
        """Before ``open``: an output at ``auto`` encodes at the preset ``--model auto`` has
        chosen by now (``chosen()``; None: the first step)."""
        if self.x264_preset == AUTO_PRESET:
            self.x264_preset = resolve_preset(AUTO_PRESET, chosen())

    @property
    def x264_choice(self) -> str | None:
        """The preset as a choice of ``--model auto`` counts it: the one this output encodes
        with, or ``auto`` where it still takes what is chosen."""
        return self.x264_preset

    @abstractmethod
    def open(self, first: Frame, fps: float | None) -> None: ...

    @abstractmethod
    def write(self, frame: Frame) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """Human-readable target with credentials redacted."""

    def stats(self) -> dict:
        return {}
