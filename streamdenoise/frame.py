"""The one record that travels between pipeline stages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass(slots=True)
class Frame:
    """A decoded frame plus the timing trail the metrics read.

    ``image`` is H×W×3 uint8 in **RGB** order everywhere inside the pipeline; sources and
    sinks convert at the edges (OpenCV cameras and windows use BGR).
    """

    image: np.ndarray
    seq: int
    pts: int | None = None
    time_base: Fraction | None = None
    capture_ts: float = field(default_factory=time.monotonic)
    stream_id: str = "0"
    # True on the first frame after a reconnect, seek or resolution change: temporal
    # denoisers must not blend across it, and sinks may record a gap.
    discontinuity: bool = False
    # Stage name -> time.monotonic() when the frame left that stage.
    marks: dict[str, float] = field(default_factory=dict)
    # The noisy input, kept only when a sink wants to show it (--compare).
    original: np.ndarray | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def pts_seconds(self) -> float | None:
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)

    def mark(self, stage: str) -> None:
        self.marks[stage] = time.monotonic()


class EndOfStream:
    """Sentinel that flows through every queue after the last frame.

    ``error`` is set when the source died instead of ending normally.
    """

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"EndOfStream(error={self.error!r})"
