"""``display``: an OpenCV window; ``--compare`` shows noisy | denoised side by side."""

from __future__ import annotations

import contextlib
import os
import socket
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
    """None if cv2.imshow can work here, else why not.

    Checked before any window call: OpenCV's Qt backend aborts the whole process when it
    cannot reach the display, so "no display" has to be found out here, politely.
    """
    info = cv2.getBuildInformation()
    gui_line = next((ln for ln in info.splitlines() if ln.strip().startswith("GUI:")), "")
    if gui_line.split(":", 1)[-1].strip().upper() in ("", "NONE"):
        return (
            "OpenCV has no GUI support (headless build); install one with "
            "`pip install opencv-python` to use 'display', or use an http:// preview"
        )
    if not sys.platform.startswith("linux"):
        return None
    name = os.environ.get("DISPLAY")
    if not name:
        return "no graphical display ($DISPLAY is not set); use an http:// preview instead"
    if not x_server_answers(name):
        return f"no X server answers on DISPLAY={name}; use an http:// preview instead"
    return None


def x_server_answers(name: str, timeout_s: float = 2.0) -> bool:
    """Whether an X server accepts connections for display ``name`` (":0", "host:1.0")."""
    host, _, rest = name.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        address, family = f"/tmp/.X11-unix/X{number}", socket.AF_UNIX
    else:
        address, family = (host, 6000 + int(number)), socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(address)
    except OSError:
        return False
    return True


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
        self._quit = False

    def open(self, first: Frame, fps: float | None) -> None:
        # No toolbar or status bar (GUI_NORMAL): the window shows the picture and only it,
        # at its own size to start with; the user may resize it.
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_GUI_NORMAL)
        width = first.width * (2 if self.options.compare else 1)
        cv2.resizeWindow(WINDOW, width, first.height)
        self._open = True

    def write(self, frame: Frame) -> None:
        if self._quit:
            return  # showing another frame would open the window the user just closed
        image = side_by_side(frame) if self.options.compare else frame.image
        cv2.imshow(WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        # q/Esc, or the window closed by its title bar button (or the window manager)
        if key in _QUIT_KEYS or self._closed():
            self._quit = True
            if self.on_quit:
                self.on_quit()

    def _closed(self) -> bool:
        try:
            return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:  # Qt has already destroyed the window the user closed
            self._open = False
            return True

    def close(self) -> None:
        if self._open:
            with contextlib.suppress(cv2.error):  # closed by the user in the meantime
                cv2.destroyWindow(WINDOW)
                cv2.waitKey(1)
            self._open = False

    def describe(self) -> str:
        return "display (compare)" if self.options.compare else "display"
