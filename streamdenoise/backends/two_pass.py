"""Two passes of a recurrent model: forward as the frames come, backward from the few after.

A recurrent tier is causal: frame t is denoised from frame t and what its state remembers
of the frames before. The same network run backward denoises t from the frames after it.
The two estimates share the current frame's noise but not the rest of their errors, so
their mean is cleaner than either (about +0.4 dB on both validation sets at σ = 20–50,
docs/models.md) — for footage where a frame may leave a few frames late: files, and live
sources whose outputs can wait.

The backward pass runs over windows: ``BLOCK`` frames plus the ``LOOKAHEAD`` after them,
its state starting afresh at the window's last frame (a backward pass over the whole clip
scores the same to 0.01 dB: the state forgets within a few frames). A frame therefore
leaves ``BLOCK + LOOKAHEAD`` frames after it came in, each frame costs
``1 + (BLOCK + LOOKAHEAD) / BLOCK`` network calls (2.25), and whoever submits frames calls
:meth:`flush` when no more are coming, for the last window's results.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from streamdenoise.backends.base import Denoiser
from streamdenoise.backends.neural import NeuralDenoiser, StreamState
from streamdenoise.errors import UsageError

#: Frames whose results one backward pass hands back.
BLOCK = 8
#: Frames after a block that the backward pass starts from.
LOOKAHEAD = 2


class TwoPassDenoiser(Denoiser):
    """Wraps a recurrent :class:`NeuralDenoiser`: one network, two stream states."""

    neural = True

    def __init__(self, inner: Denoiser) -> None:
        if not isinstance(inner, NeuralDenoiser) or not inner.temporal:
            from streamdenoise.models.tiers import discover_tiers

            what = getattr(inner, "model", None) or inner.name
            inner.close()
            recurrent = ", ".join(sorted(t.name for t in discover_tiers()[0] if t.temporal))
            raise UsageError(
                f"--two-pass needs a recurrent model ({recurrent}); {what} denoises each "
                "frame alone"
            )
        self.inner = inner
        self.name, self.precision, self.device = inner.name, inner.precision, inner.device
        self.model = inner.model
        self.frames_late = BLOCK + LOOKAHEAD
        self.frames_in_flight = self.frames_late + 1
        self._forward = StreamState()
        #: (noisy frame, forward estimate, its future) of the frames not handed back yet
        self._pending: list[tuple[np.ndarray, np.ndarray, Future[np.ndarray]]] = []

    def prepare(self, width: int, height: int) -> None:
        self.inner.prepare(width, height)

    def process(self, image: np.ndarray) -> np.ndarray:
        raise UsageError(
            "two-pass denoising hands each frame back a few frames later: use submit() and "
            "flush() (the pipeline does)"
        )

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        try:
            (forward,), (self._forward,) = self.inner.process_batch([image], [self._forward])
        except Exception as err:
            future.set_exception(err)
            return future
        self._pending.append((image, forward, future))
        if len(self._pending) >= BLOCK + LOOKAHEAD:
            self._backward(BLOCK)
        return future

    def flush(self) -> None:
        """Hand back every frame submitted so far (the stream ends or breaks here)."""
        if self._pending:
            self._backward(len(self._pending))

    def _backward(self, count: int) -> None:
        """The backward pass over every pending frame; the first ``count`` are done."""
        done, self._pending = self._pending[:count], self._pending[count:]
        try:
            state, backward = StreamState(), []
            for image, _, _ in reversed([*done, *self._pending]):
                (estimate,), (state,) = self.inner.process_batch([image], [state])
                backward.append(estimate)
            backward.reverse()
        except Exception as err:
            for *_, future in done:
                future.set_exception(err)
            return
        for (_, forward, future), estimate in zip(done, backward, strict=False):
            mean = (forward.astype(np.uint16) + estimate + 1) >> 1
            future.set_result(mean.astype(np.uint8))

    def reset(self) -> None:
        self.flush()
        self._forward = StreamState()

    def describe(self) -> dict:
        return {
            **self.inner.describe(),
            "frames_in_flight": self.frames_in_flight,
            "two_pass": {"block": BLOCK, "lookahead": LOOKAHEAD},
        }

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.inner.close()
