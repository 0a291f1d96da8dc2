"""The interface every denoiser backend implements, neural or classical."""

from __future__ import annotations

from abc import ABC, abstractmethod

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

    def prepare(self, width: int, height: int) -> None:  # noqa: B027 - optional hook
        """Allocate buffers / build engines for this frame size before the first frame."""

    @abstractmethod
    def process(self, image: np.ndarray) -> np.ndarray:
        """H×W×3 uint8 RGB in, denoised H×W×3 uint8 RGB out."""

    def reset(self) -> None:  # noqa: B027 - stateless backends have nothing to reset
        """Forget temporal state (called after a discontinuity: reconnect, size change)."""

    def describe(self) -> dict:
        return {"backend": self.name, "precision": self.precision, "device": self.device}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources (filter processes, engines, GPU memory)."""
