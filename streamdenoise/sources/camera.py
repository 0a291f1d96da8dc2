"""Local cameras through OpenCV (V4L2 on Linux), read on a helper thread so no read hangs."""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import cv2

from streamdenoise.errors import SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SourceOptions
from streamdenoise.sources.base import Source, SourceState

TIME_BASE = Fraction(1, 1_000_000)  # PTS are microseconds of capture time


class CameraSource(Source):
    """``0`` or ``/dev/video0``. Frames are stamped with their capture time."""

    live = True

    def __init__(self, device: int | str, options: SourceOptions) -> None:
        super().__init__()
        self.device = device
        self.options = options
        self._cap: cv2.VideoCapture | None = None
        self._reader: threading.Thread | None = None

    def open(self) -> None:
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our message is clearer
        try:
            cap = cv2.VideoCapture(self.device, api)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open camera {self.device} (no such device, busy, or no permission; "
                "`streamdenoise devices` lists the cameras found)"
            )
        if self.options.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.options.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.options.size[1])
        if self.options.fps:
            cap.set(cv2.CAP_PROP_FPS, self.options.fps)
        self.fps = cap.get(cv2.CAP_PROP_FPS) or self.options.fps
        size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_size = size if min(size) > 0 else None
        self._cap = cap

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        assert self._cap is not None, "open() first"
        frames: queue.Queue = queue.Queue(maxsize=2)
        done = threading.Event()  # ends the reader when this generator ends, for any reason
        self._reader = threading.Thread(
            target=self._read_loop, args=(frames, stop, done), daemon=True, name="camera-reader"
        )
        self._reader.start()
        start = time.monotonic()
        seq = 0
        try:
            while not stop.is_set():
                try:
                    item = frames.get(timeout=self.options.timeout_s)
                except queue.Empty:
                    self.state = SourceState.FAILED
                    raise SourceError(
                        f"camera {self.device}: no frame for {self.options.timeout_s:g} s"
                    ) from None
                if item is None:
                    self.state = SourceState.FAILED
                    raise SourceError(f"camera {self.device} stopped delivering frames")
                bgr, captured = item
                self.state = SourceState.LIVE
                yield Frame(
                    cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                    seq=seq,
                    pts=round((captured - start) * 1_000_000),
                    time_base=TIME_BASE,
                    capture_ts=captured,
                )
                seq += 1
            self.state = SourceState.ENDED
        finally:
            done.set()

    def _read_loop(self, frames: queue.Queue, stop: threading.Event, done: threading.Event):
        """Blocking reads live here; the consumer waits on the queue with a timeout instead."""
        while not (stop.is_set() or done.is_set()):
            ok, bgr = self._cap.read()
            item = (bgr, time.monotonic()) if ok else None
            if frames.full():  # keep only the freshest frames
                with contextlib.suppress(queue.Empty):
                    frames.get_nowait()
            frames.put(item)
            if not ok:
                return

    def close(self) -> None:
        if self._cap is None:
            return
        if self._reader is not None:
            # Releasing the device under a read in progress can crash the driver: wait for it.
            self._reader.join(timeout=self.options.timeout_s)
            if self._reader.is_alive():
                return  # a read is stuck in the driver; the process exit will release it
        self._cap.release()
        self._cap = None

    def describe(self) -> str:
        return f"camera {self.device}"
