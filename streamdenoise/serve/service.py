"""One denoiser shared by many cameras: a stateless service and the thread that feeds it.

:class:`DenoiseService` is the whole contract between the cameras and the network:
``denoise(frames, states) -> (frames, states)``. A camera's recurrent state travels with
each request and comes back with the answer, so the service remembers nothing between calls
and could as well run in another process or on another machine. Neural backends batch the
frames of one call into one graph call per frame size (:meth:`NeuralDenoiser.process_batch`).
Classical filters keep internal history they cannot hand out, so each stream's state holds
that stream's own filter instance (created on its first frame).

:class:`BatchWorker` is the in-process scheduler in front of a service: each round it takes
at most one frame from each attached camera, starting one camera further along each time
(round-robin), so a camera that sends more frames than others cannot starve them; frames a
camera sends faster than the service runs are dropped from that camera's own queue, counted
there. A failing batch is retried frame by frame so that one camera's bad frame costs only
that frame; a service that is gone (:class:`ServiceUnavailable`: on a cluster, no replica
answered) fails the whole batch at once, each frame counted by its camera.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from streamdenoise.backends.base import Denoiser
from streamdenoise.errors import UserError
from streamdenoise.frame import EndOfStream, Frame
from streamdenoise.redact import redact_obj

if TYPE_CHECKING:  # torch comes with them: a process that only schedules frames never loads it
    from streamdenoise.backends.neural import NeuralDenoiser, StreamState

log = logging.getLogger(__name__)

POLL_S = 0.05


class DenoiseService(ABC):
    """``denoise(frames, states) -> (frames, states)``; frames are H×W×3 uint8 RGB."""

    @abstractmethod
    def new_state(self, strength: float | None = None) -> Any:
        """The state of a stream that starts now (strength None: the service's own)."""

    @abstractmethod
    def denoise(self, frames: Sequence[np.ndarray], states: Sequence[Any]) -> tuple[list, list]:
        """Denoise frame i with state i; the returned states go with each stream's next frame."""

    def release(self, state: Any) -> None:  # noqa: B027 - only stateful filters hold anything
        """A stream ended: free what its state holds."""

    def spread(self, threads: int) -> None:  # noqa: B027 - where per-stream work is light
        """Let the per-stream work of one call (noise level, motion, conversions) run on up
        to ``threads`` threads, while the batched graph call stays one."""

    @abstractmethod
    def describe(self) -> dict: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the runtime."""


class SharedNeuralService(DenoiseService):
    """A neural backend whose every call may mix streams (batched per frame size)."""

    def __init__(self, denoiser: NeuralDenoiser) -> None:
        self.denoiser = denoiser
        self._pool: ThreadPoolExecutor | None = None

    def new_state(self, strength: float | None = None) -> StreamState:
        from streamdenoise.backends.neural import StreamState

        return StreamState(strength=strength)

    def denoise(self, frames, states):
        return self.denoiser.process_batch(frames, states)

    def spread(self, threads: int) -> None:
        if threads > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="denoise-prep")
            self.denoiser.executor = self._pool

    def describe(self) -> dict:
        return {**self.denoiser.describe(), "shared": "batched"}

    def close(self) -> None:
        self.denoiser.close()
        if self._pool is not None:
            self._pool.shutdown()


class SharedAutoService(DenoiseService):
    """``model: auto`` for a shared denoiser: at its first frame the tiers are calibrated (or
    read from the calibration cache) for the frame size and the *summed* frame rate of the
    cameras sharing it, and the strongest tier that keeps up runs, shared and batched, from
    then on. The tier is chosen once per denoiser; it does not step between tiers while
    running (a reload that restarts the denoiser chooses again)."""

    def __init__(self, auto) -> None:
        self.auto = auto
        self.shared: SharedNeuralService | None = None
        #: Frames per second the cameras sharing this denoiser deliver together; set by the
        #: server before the first frame (None: the auto module's assumption).
        self.rate: Callable[[], float | None] = lambda: None
        self._threads = 0

    def new_state(self, strength: float | None = None) -> StreamState:
        from streamdenoise.backends.neural import StreamState

        return StreamState(strength=strength)

    def denoise(self, frames, states):
        if self.shared is None:
            self.auto.configure(self.rate(), adaptive=True)
            height, width = frames[0].shape[:2]
            self.auto.prepare(width, height)
            self.shared = SharedNeuralService(self.auto.active)
            self.shared.spread(self._threads)
            log.warning(
                "auto: tier %s for %s fps of %dx%d cameras",
                self.auto.label,
                f"{self.auto.fps:g}" if self.auto.fps else "an assumed",
                width,
                height,
            )
        return self.shared.denoise(frames, states)

    def spread(self, threads: int) -> None:
        self._threads = threads

    def describe(self) -> dict:
        info = self.auto.describe()
        return {**info, "tier": info.get("model"), "shared": "batched"}

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        self.auto.close()


@dataclass
class _FilterState:
    strength: float | None
    denoiser: Denoiser | None = None


class PerStreamService(DenoiseService):
    """Classical filters: one filter instance per stream, carried in the stream's state."""

    def __init__(self, factory: Callable[..., Denoiser], first: Denoiser) -> None:
        self._factory = factory
        self._info = first.describe()
        first.close()

    def new_state(self, strength: float | None = None) -> _FilterState:
        return _FilterState(strength)

    def denoise(self, frames, states):
        outputs = []
        for frame, state in zip(frames, states, strict=True):
            if state.denoiser is None:
                extra = {} if state.strength is None else {"strength": state.strength}
                state.denoiser = self._factory(**extra)
                state.denoiser.prepare(frame.shape[1], frame.shape[0])
            outputs.append(state.denoiser.process(frame))
        return outputs, list(states)

    def release(self, state: _FilterState) -> None:
        if state.denoiser is not None:
            state.denoiser.close()
            state.denoiser = None

    def describe(self) -> dict:
        return {**self._info, "shared": "per-stream"}


def create_service(backend: str = "auto", **settings) -> DenoiseService:
    """A service around the denoiser a run would use with these settings (model, precision,
    device, threads, engine_cache: see :func:`streamdenoise.runtime.create_denoiser`); raises
    a UserError with one readable line."""
    from streamdenoise.backends.neural import NeuralDenoiser
    from streamdenoise.runtime import create_denoiser

    first = create_denoiser(backend, **settings)
    if isinstance(first, NeuralDenoiser):
        return SharedNeuralService(first)
    if first.name == "auto":
        return SharedAutoService(first)
    return PerStreamService(lambda **extra: create_denoiser(backend, **(settings | extra)), first)


class ServiceUnavailable(UserError):
    """The service itself failed (a remote replica died or did not answer), not one frame:
    the whole batch is dropped and counted, not retried frame by frame."""


class Client(Protocol):
    """What a camera offers the worker (see :class:`streamdenoise.serve.camera.Camera`)."""

    name: str
    strength: float | None
    dstate: Any

    def take(self) -> Frame | EndOfStream | None: ...

    def ready_for_more(self) -> bool: ...

    def fps(self) -> float | None: ...

    def denoised(self, frame: Frame) -> None: ...

    def ended(self, item: EndOfStream) -> None: ...

    def denoise_failed(self, frame: Frame, error: BaseException) -> None: ...


class DenoiserStats:
    """What the metrics read about one worker (updated by its thread only)."""

    def __init__(self) -> None:
        self.batches = 0
        self.frames = 0
        self.failures = 0
        self.last_batch = 0
        self.busy_s = 0.0


class BatchWorker:
    """Feeds one service from many cameras, fairly, on its own thread."""

    def __init__(
        self,
        name: str,
        service: DenoiseService,
        max_batch: int,
        observe: Callable[[int, float], None] | None = None,
    ) -> None:
        self.name = name
        self.service = service
        self.max_batch = max_batch
        self.stats = DenoiserStats()
        self._observe = observe
        self._clients: list[Client] = []
        self._lock = threading.Lock()  # the client list
        self._batch_lock = threading.Lock()  # held while a batch runs
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._turn = 0
        self.thread = threading.Thread(target=self._run, name=f"denoise {name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def attach(self, client: Client) -> None:
        with self._lock:
            self._clients.append(client)
        self._wake.set()

    def detach(self, client: Client) -> None:
        """Remove ``client``; when this returns no batch holds any of its frames."""
        with self._batch_lock, self._lock:
            if client in self._clients:
                self._clients.remove(client)
        if client.dstate is not None:
            self.service.release(client.dstate)
            client.dstate = None

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def describe(self) -> dict:
        return redact_obj(self.service.describe())

    def source_rate(self) -> float | None:
        """Frames per second the attached cameras deliver together (None: none says)."""
        with self._lock:
            rates = [client.fps() for client in self._clients]
        return sum(r for r in rates if r) or None

    def notify(self) -> None:
        """A client queued a frame."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout=30)
        self.service.close()

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            while not self._stop.is_set():
                with self._batch_lock:
                    batch = self._collect()
                    if not batch:
                        break
                    self._run_batch(batch)

    def _collect(self) -> list[tuple[Client, Frame]]:
        """At most one frame per client, starting one client further along each round."""
        with self._lock:
            clients = list(self._clients)
        if not clients:
            return []
        start = self._turn % len(clients)
        self._turn += 1
        batch: list[tuple[Client, Frame]] = []
        for client in clients[start:] + clients[:start]:
            if len(batch) >= self.max_batch:
                break
            if not client.ready_for_more():
                continue
            item = client.take()
            if isinstance(item, EndOfStream):
                client.ended(item)
            elif item is not None:
                batch.append((client, item))
        return batch

    def _run_batch(self, batch: list[tuple[Client, Frame]]) -> None:
        started = time.monotonic()
        for client, frame in batch:
            frame.marks["dequeued"] = started
            frame.original = frame.image  # the dashboard's noisy view; not a copy
            if frame.discontinuity or client.dstate is None:
                if client.dstate is not None:
                    self.service.release(client.dstate)
                client.dstate = self.service.new_state(client.strength)
        try:
            images, states = self.service.denoise(
                [frame.image for _, frame in batch], [client.dstate for client, _ in batch]
            )
        except Exception as err:
            if len(batch) == 1 or isinstance(err, ServiceUnavailable):
                self.stats.failures += len(batch)
                for client, frame in batch:
                    client.denoise_failed(frame, err)
            else:  # find the frame that failed; the others go through one by one
                for item in batch:
                    self._run_batch([item])
            return
        done = time.monotonic()
        self.stats.batches += 1
        self.stats.frames += len(batch)
        self.stats.last_batch = len(batch)
        self.stats.busy_s += done - started
        if self._observe:
            self._observe(len(batch), done - started)
        for (client, frame), image, state in zip(batch, images, states, strict=True):
            client.dstate = state
            frame.image = image
            frame.marks["denoised"] = done
            client.denoised(frame)
