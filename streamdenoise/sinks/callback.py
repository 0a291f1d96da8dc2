"""Any callable as an output: ``PipelineConfig(outputs=[my_function])`` calls it per frame."""

from __future__ import annotations

from collections.abc import Callable

from streamdenoise.frame import Frame
from streamdenoise.sinks.base import Sink


def callable_name(function: Callable) -> str:
    return getattr(function, "__qualname__", None) or type(function).__name__


class CallbackSink(Sink):
    """Calls ``function(frame)`` on the sink's own thread for every denoised frame.

    Lossless: the pipeline waits for the function, as for a file (a live source still drops
    its oldest frames under its ``latest`` policy rather than fall behind). An exception
    retires this output and leaves the others running, like any failing sink.
    """

    lossless = True

    def __init__(self, function: Callable[[Frame], object]) -> None:
        self.function = function
        self.calls = 0

    def open(self, first: Frame, fps: float | None) -> None:
        pass

    def write(self, frame: Frame) -> None:
        self.function(frame)
        self.calls += 1

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"callable {callable_name(self.function)}"

    def stats(self) -> dict:
        return {"calls": self.calls}
