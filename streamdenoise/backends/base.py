"""The interface every denoiser backend implements, neural or classical."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future

import numpy as np


class Denoiser(ABC):
    """Turns one noisy RGB frame into a clean one, possibly using earlier frames.

    Backends are created by :func:`streamdenoise.backends.create_backend` with the keyword
    arguments ``model``, ``precision``, ``strength`` and ``device`` (each may be None for
    "backend default"). A backend is used from one thread at a time.
    """

    name: str = "?"
    precision: str = "fp32"
    device: str = "cpu"
    #: Runs a trained model (``model``, tiers, ``--model auto``); classical filters do not.
    neural: bool = False
    #: Frames a pipeline may :meth:`submit` before taking the first result (1: one at a time).
    frames_in_flight: int = 1
    #: Frames submitted after one before its result can come (0: it comes without waiting
    #: for later frames); such a backend has no :meth:`process`, only submit and flush.
    frames_late: int = 0

    def prepare(self, width: int, height: int) -> None:  # noqa: B027 - optional hook
        """Allocate buffers / build engines for this frame size before the first frame."""

    @abstractmethod
    def process(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB in, denoised H×W×3 uint8 RGB out."""

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        """Start denoising the stream's next frame; its result comes through the future.

        Frames are submitted in order from one thread, at most :attr:`frames_in_flight`
        unfinished at a time, so a backend that overlaps frames can keep its cores busy while
        the pipeline hands over the previous one. The default denoises at once."""
        future: Future[np.ndarray] = Future()
        try:
            future.set_result(self.process(image))
        except Exception as err:
            future.set_exception(err)
        return future

    def flush(self) -> None:  # noqa: B027 - a backend that answers in time has nothing left
        """Settle every submitted frame's future now: no more frames come before
        :meth:`reset` or the end (a backend that waits for later frames answers with less)."""

    def reset(self) -> None:  # noqa: B027 - stateless backends have nothing to reset
        """Forget temporal state (called after a discontinuity: reconnect, size change)."""

    def describe(self) -> dict:
        return {"backend": self.name, "precision": self.precision, "device": self.device}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources (filter processes, engines, GPU memory)."""
