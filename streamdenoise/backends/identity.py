"""``identity``: returns its input. The evaluation's "noisy input" row and a test double."""

from __future__ import annotations

import numpy as np

from streamdenoise.backends.base import Denoiser


class IdentityDenoiser(Denoiser):
    name = "identity"
    precision = "uint8"

    def __init__(self, **_: object) -> None:
        """Accepts and ignores the registry's keyword arguments (model, strength, ...)."""

    def process(self, image: np.ndarray) -> np.ndarray:
        return image.copy()

    def process_float(self, image: np.ndarray) -> np.ndarray:
        """The float protocol's noisy input, unclipped."""
        return image.copy()
