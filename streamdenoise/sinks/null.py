"""``null``: discards frames, for measuring the pipeline without an encoder."""

from __future__ import annotations

from streamdenoise.frame import Frame
from streamdenoise.sinks.base import Sink


class NullSink(Sink):
    lossless = True

    def open(self, first: Frame, fps: float | None) -> None:
        pass

    def write(self, frame: Frame) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "null"
