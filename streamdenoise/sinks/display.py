"""``display``: an OpenCV window; ``--compare`` shows noisy | denoised side by side."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import cv2
import numpy as np

from streamdenoise.errors import SinkError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.sinks.base import Sink

WINDOW = "streamdenoise"
_QUIT_KEYS = (ord("q"), 27)  # q, Esc


def gui_unavailable_reason() -> str | None:
    """None if cv2.imshow can work here, else why not."""
    info = cv2.getBuildInformation()
    gui_line = next((ln for ln in info.splitlines() if ln.strip().startswith("GUI:")), "")
    if gui_line.split(":", 1)[-1].strip().upper() in ("", "NONE"):
        return (
            "OpenCV has no GUI support (headless build); install one with "
            "`pip install opencv-python` to use 'display', or use an http:// preview"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no graphical display ($DISPLAY is not set); use an http:// preview instead"
    return None


def side_by_side(frame: Frame) -> np.ndarray:
    """Noisy input left, denoised output right (the denoised frame alone without --compare)."""
    if frame.original is None or frame.original.shape != frame.image.shape:
        return frame.image
    return np.concatenate([frame.original, frame.image], axis=1)


class DisplaySink(Sink):
    def __init__(self, options: SinkOptions) -> None:
        reason = gui_unavailable_reason()
        if reason:
            raise SinkError(f"cannot use 'display': {reason}")
        self.options = options
        #: Called when the user presses q or Esc; the pipeline sets it to its stop().
        self.on_quit: Callable[[], None] | None = None
        self._open = False

    def open(self, first: Frame, fps: float | None) -> None:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        self._open = True

    def write(self, frame: Frame) -> None:
        image = side_by_side(frame) if self.options.compare else frame.image
        cv2.imshow(WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if (cv2.waitKey(1) & 0xFF) in _QUIT_KEYS and self.on_quit:
            self.on_quit()

    def close(self) -> None:
        if self._open:
            cv2.destroyWindow(WINDOW)
            cv2.waitKey(1)
            self._open = False

    def describe(self) -> str:
        return "display (compare)" if self.options.compare else "display"
