"""Bounded frame queue with an explicit overflow policy.

``latest`` keeps latency bounded for live sources (the oldest frame is dropped and counted);
``lossless`` blocks the producer so that every frame of a file is processed. The end-of-stream
marker is never dropped.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Literal

from streamdenoise.frame import EndOfStream, Frame

Policy = Literal["latest", "lossless"]
POLICIES: tuple[Policy, ...] = ("latest", "lossless")
Item = Frame | EndOfStream


class QueueClosed(Exception):
    """Raised to a producer or consumer blocked on a queue that was shut down."""


class FrameQueue:
    def __init__(self, maxsize: int, policy: Policy) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if policy not in POLICIES:
            raise ValueError(f"unknown queue policy {policy!r}")
        self.maxsize = maxsize
        self.policy: Policy = policy
        self.drops = 0
        self._items: collections.deque[Item] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._woken = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, item: Item, timeout: float | None = None) -> bool:
        """Add ``item``; returns False if a lossless put timed out.

        An EndOfStream is always accepted, even into a full queue, so shutdown never waits
        on a consumer that is gone.
        """
        with self._lock:
            if self._closed:
                raise QueueClosed
            if isinstance(item, EndOfStream):
                self._items.append(item)
            elif self.policy == "latest":
                while self._frame_count() >= self.maxsize:
                    self._drop_oldest_frame()
                self._items.append(item)
            else:
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._frame_count() >= self.maxsize:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._not_full.wait(remaining)
                    if self._closed:
                        raise QueueClosed
                self._items.append(item)
            self._not_empty.notify()
            return True

    def get(self, timeout: float | None = None) -> Item | None:
        """Next item, or None when ``timeout`` passes or :meth:`wake` is called first."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    raise QueueClosed
                if self._woken:
                    self._woken = False
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._not_empty.wait(remaining)
            item = self._items.popleft()
            self._not_full.notify()
            return item

    def wake(self) -> None:
        """Make a waiting (or the next) :meth:`get` of an empty queue return None now: the
        consumer has something else to do (e.g. a frame it had in flight is done)."""
        with self._lock:
            self._woken = True
            self._not_empty.notify_all()

    def close(self) -> None:
        """Wake every waiter with QueueClosed; items already queued are discarded."""
        with self._lock:
            self._closed = True
            self._items.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def _frame_count(self) -> int:
        return sum(1 for it in self._items if isinstance(it, Frame))

    def _drop_oldest_frame(self) -> None:
        for i, it in enumerate(self._items):
            if isinstance(it, Frame):
                del self._items[i]
                self.drops += 1
                return
