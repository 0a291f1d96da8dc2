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

A service that can overlap calls (:attr:`DenoiseService.frames_in_flight` > 1: a per-frame
model on OpenVINO's CPU plugin, see :func:`streamdenoise.runtime.frames_in_flight`) gets up
to that many single-frame calls at once, each from a different camera and on a thread of its
own: on a CPU, two one-thread streams of frames keep the cores busier than one two-thread
call at a time. A camera with a frame in flight waits for it, so its frames stay in order and
its state is never used by two calls at once.
"""

from __future__ import annotations

import logging
import os
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
from streamdenoise.redact import redact, redact_obj
from streamdenoise.settings import AUTO_PRESET

if TYPE_CHECKING:  # torch comes with them: a process that only schedules frames never loads it
    from streamdenoise.backends.neural import NeuralDenoiser, StreamState

log = logging.getLogger(__name__)

POLL_S = 0.05


def summed_rate(rates: Sequence[float | None], cameras: int) -> float | None:
    """Frames per second ``cameras`` cameras deliver together, from the ``rates`` known so far
    (None: a camera that has not opened yet, or does not say): those not known are taken to
    run at the mean of those known. None when no rate is known."""
    known = [r for r in rates if r]
    if not known:
        return None
    return sum(known) / len(known) * max(cameras, len(known))


class DenoiseService(ABC):
    """``denoise(frames, states) -> (frames, states)``; frames are H×W×3 uint8 RGB."""

    @abstractmethod
    def new_state(self, strength: float | None = None) -> Any:
        """The state of a stream that starts now (strength None: the service's own)."""

    #: Calls that may run at once, each of other streams (called with ``overlap``).
    frames_in_flight: int = 1

    @abstractmethod
    def denoise(
        self, frames: Sequence[np.ndarray], states: Sequence[Any], overlap: bool = False
    ) -> tuple[list, list]:
        """Denoise frame i with state i; the returned states go with each stream's next frame.
        ``overlap``: other calls may run beside this one (see :attr:`frames_in_flight`)."""

    def release(self, state: Any) -> None:  # noqa: B027 - only stateful filters hold anything
        """A stream ended: free what its state holds."""

    def spread(self, threads: int) -> None:  # noqa: B027 - where per-stream work is light
        """Let the per-stream work of one call (noise level, motion, conversions) run on up
        to ``threads`` threads, while the batched graph call stays one."""

    @abstractmethod
    def describe(self) -> dict: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the runtime."""

    def encoder_preset(self) -> str | None:
        """The x264 preset chosen for the cameras' outputs at ``preset: auto`` (None: the
        default one)."""
        return None


class SharedNeuralService(DenoiseService):
    """A neural backend whose every call may mix streams (batched per frame size)."""

    def __init__(self, denoiser: NeuralDenoiser) -> None:
        self.denoiser = denoiser
        self._pool: ThreadPoolExecutor | None = None

    def new_state(self, strength: float | None = None) -> StreamState:
        from streamdenoise.backends.neural import StreamState

        return StreamState(strength=strength)

    @property
    def frames_in_flight(self) -> int:  # type: ignore[override]
        return self.denoiser.frames_in_flight

    def denoise(self, frames, states, overlap=False):
        return self.denoiser.process_batch(frames, states, overlap)

    def spread(self, threads: int) -> None:
        if threads > 1 and self._pool is None:
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="denoise-prep")
            self.denoiser.executor = self._pool

    def describe(self) -> dict:
        return {**self.denoiser.describe(), "shared": "batched"}

    def stop_threads(self) -> None:
        """End the per-stream threads (the denoiser stays open)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            self.denoiser.executor = None

    def close(self) -> None:
        self.denoiser.close()
        self.stop_threads()


class SharedAutoService(DenoiseService):
    """``model: auto`` for a shared denoiser: at its first frame the tiers are calibrated (or
    read from the calibration cache) for the frame size and the *summed* frame rate of the
    cameras sharing it, leaving each frame's decoding and its camera's x264 outputs their share
    of the CPU, and the strongest tier that keeps up runs, shared and batched. Then it adapts
    as ``run --model auto`` does: the overuse detector watches the share of the cameras'
    summed frame interval the calls take (and the cameras' queue drops); a tier that falls
    behind steps down, headroom held for a while steps up, the next tier built and warmed up
    on the side while the current one runs. Each camera's recurrent state starts afresh on the
    new tier (its noise level kept). When cameras come or go, the x264 preset of their outputs
    at ``preset: auto`` is chosen again for the new load, from the costs the start measured
    (on a thread of its own); recordings take it at their next segment."""

    def __init__(self, auto) -> None:
        self.auto = auto
        self.shared: SharedNeuralService | None = None
        #: Frames per second the cameras sharing this denoiser deliver together, and the x264
        #: presets each of them encodes its frames with; set by the server before the first
        #: frame (else: the auto module's assumed rate, one default-preset recording).
        self.rate: Callable[[], float | None] = lambda: None
        self.encoders: Callable[[], list[list[str]] | None] = lambda: None
        #: Frames the cameras' queues have dropped so far, all together (0: not known here).
        self.drops: Callable[[], int] = lambda: 0
        #: False where the cameras decode and encode on CPUs of their own (a cluster's stream
        #: workers): then no CPU is set aside for them here.
        self.codec_here = True
        self._threads = 0
        self._services: dict[int, SharedNeuralService] = {}  # by the tier's denoiser
        self._lock = threading.Lock()
        #: The cameras the preset was last chosen for: their outputs' presets, how many, the
        #: summed rate; and the thread choosing again, while it runs.
        self._chosen_for: tuple | None = None
        self._choosing: threading.Thread | None = None

    def new_state(self, strength: float | None = None) -> StreamState:
        from streamdenoise.backends.neural import StreamState

        return StreamState(strength=strength)

    @property
    def frames_in_flight(self) -> int:  # type: ignore[override]
        """The tier's, once chosen (the first call runs alone)."""
        return 1 if self.shared is None else self.shared.frames_in_flight

    def denoise(self, frames, states, overlap=False):
        with self._lock:
            if self.shared is None:
                self._choose(frames[0])
            elif self.auto.shared_switch(time.monotonic()):
                self.shared = self._service(self.auto.active)
            shared = self.shared
        started = time.monotonic()
        result = shared.denoise(frames, states, overlap)
        now = time.monotonic()
        # calls that overlap share the cores: each frame's part of the worker's time
        busy = (now - started) / (shared.frames_in_flight if overlap else 1)
        with self._lock:
            rate = self.rate()
            if rate and rate != self.auto.fps:
                self.auto.set_rate(rate)
            self._choose_preset_again(rate)
            self.auto.shared_frames_done(now, frames, busy, self.drops())
        return result

    def _cameras(self, per_camera: list[list[str]] | None, rate: float | None) -> tuple:
        per_camera = per_camera or []
        return tuple(p for presets in per_camera for p in presets), len(per_camera), rate

    def _choose_preset_again(self, rate: float | None) -> None:
        """The cameras' outputs or summed rate changed since the preset was chosen: choose
        again for those at ``auto`` (once per change, whatever comes of it)."""
        if not self.codec_here or self._choosing is not None:
            return
        cameras = self._cameras(self.encoders(), rate)
        if cameras == self._chosen_for:
            return
        self._chosen_for = cameras
        if AUTO_PRESET in cameras[0]:
            self._choosing = threading.Thread(
                target=self._choose_preset, args=cameras, name="auto preset", daemon=True
            )
            self._choosing.start()

    def _choose_preset(self, encoders: tuple[str, ...], sources: int, rate: float | None) -> None:
        try:
            self.auto.choose_preset_again(rate, encoders, sources)
        except Exception as err:  # the outputs keep the preset they have
            log.warning("auto: cannot choose the x264 preset again: %s", err)
        finally:
            with self._lock:
                self._choosing = None

    def encoder_preset(self) -> str | None:
        with self._lock:
            return self.auto.encoder_preset

    def _choose(self, frame: np.ndarray) -> None:
        per_camera = self.encoders()
        self._chosen_for = self._cameras(per_camera, self.rate())
        if not self.codec_here:
            self.auto.configure(self.rate(), adaptive=True, encoders=(), codec_here=False)
        elif per_camera:
            self.auto.configure(
                self.rate(),
                adaptive=True,
                encoders=[preset for presets in per_camera for preset in presets],
                sources=len(per_camera),
            )
        else:
            self.auto.configure(self.rate(), adaptive=True)
        height, width = frame.shape[:2]
        self.auto.prepare(width, height)
        self.shared = self._service(self.auto.active)
        log.warning(
            "auto: tier %s for %s fps of %dx%d cameras",
            self.auto.label,
            f"{self.auto.fps:g}" if self.auto.fps else "an assumed",
            width,
            height,
        )

    def _service(self, denoiser: NeuralDenoiser) -> SharedNeuralService:
        service = self._services.get(id(denoiser))
        if service is None:
            service = self._services[id(denoiser)] = SharedNeuralService(denoiser)
            service.spread(self._threads)
        return service

    def spread(self, threads: int) -> None:
        self._threads = threads

    def describe(self) -> dict:
        info = self.auto.describe()
        described = {**info, "tier": info.get("model"), "shared": "batched"}
        if self.shared is not None:  # running: the summed rate it is judged by, its switches
            described["source_fps"] = self.auto.fps
            described["rungs"] = [rung.label for rung in self.auto.rungs]  # weakest first
            described["switches"] = list(self.auto.switches)
        # what the first choice left CPU for, and the presets it tried
        for key in ("x264_encoders", "codec_ms_per_frame", "x264_preset_steps"):
            if key in self.auto.calibration:
                described[key] = self.auto.calibration[key]
        if self.auto.encoder_preset:
            described["x264_preset"] = self.auto.encoder_preset
            described["x264_preset_choices"] = list(self.auto.preset_choices)
        return described

    def close(self) -> None:
        choosing = self._choosing
        if choosing is not None:
            choosing.join(timeout=30)
        for service in self._services.values():
            service.stop_threads()
        self.auto.close()  # every tier's denoiser


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

    def denoise(self, frames, states, overlap=False):
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

    def encoders(self) -> list[str]: ...

    def drops(self) -> int: ...

    def denoised(self, frame: Frame) -> None: ...

    def ended(self, item: EndOfStream) -> None: ...

    def denoise_failed(self, frame: Frame, error: BaseException) -> None: ...


class DenoiserStats:
    """What the metrics read about one worker (updated under its lock)."""

    def __init__(self) -> None:
        self.batches = 0
        self.frames = 0
        self.failures = 0
        self.last_batch = 0
        #: Wall time during which at least one call ran (calls that overlap count once, so
        #: its share of the elapsed time never passes 100 %), added as the last one ends.
        self.busy_s = 0.0


class BatchWorker:
    """Feeds one service from many cameras, fairly, on its own thread (and, where the
    service overlaps calls, on up to ``frames_in_flight`` threads of its own)."""

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
        self._drops_gone = 0  # dropped by cameras no longer attached
        self._lock = threading.Lock()  # the client list, the calls in flight, the stats
        self._batch_lock = threading.Lock()  # held while frames are taken or a batch runs here
        self._settled = threading.Condition(self._lock)  # a call in flight ended
        self._in_flight: set[Client] = set()  # clients whose frame is in a call on the pool
        self._calls = 0  # calls running now (on this thread or the pool)
        self._busy_since = 0.0
        self._pool: ThreadPoolExecutor | None = None
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
                self._drops_gone += client.drops()
            while client in self._in_flight:
                self._settled.wait()
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
        """Frames per second the attached cameras deliver together (None: none says yet)."""
        with self._lock:
            rates = [client.fps() for client in self._clients]
        return summed_rate(rates, len(rates))

    def source_drops(self) -> int:
        """Frames the cameras' queues have dropped so far, those of detached cameras too."""
        with self._lock:
            return self._drops_gone + sum(client.drops() for client in self._clients)

    def encoder_preset(self) -> str | None:
        """The x264 preset of the cameras' outputs at ``preset: auto``, once chosen."""
        return self.service.encoder_preset()

    def source_encoders(self) -> list[list[str]]:
        """The x264 presets each attached camera encodes its frames with, per camera."""
        with self._lock:
            return [client.encoders() for client in self._clients]

    def notify(self) -> None:
        """A client queued a frame."""
        self._wake.set()

    def stop(self) -> None:
        """Stop taking frames; the calls in flight finish and are delivered first."""
        self._stop.set()
        self._wake.set()
        self.thread.join(timeout=30)
        self.service.close()

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            while not self._stop.is_set() and self._round():
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _window(self) -> int:
        """Calls to keep in flight: the service's figure for single-frame batches (the CPU
        default), where at least two cameras can fill them; else one at a time."""
        if self.max_batch != 1:
            return 1
        with self._lock:
            return min(self.service.frames_in_flight, len(self._clients))

    def _round(self) -> bool:
        """Take and start one batch; False when no camera had a frame."""
        window = self._window()
        with self._lock:  # a free slot first: the pool never queues a call
            while self._calls >= window and not self._stop.is_set():
                self._settled.wait(POLL_S)
        with self._batch_lock:
            batch = self._collect()
            if not batch:
                return False
            if window == 1:
                self._run_batch(batch)
                return True
            with self._lock:
                self._in_flight.update(client for client, _ in batch)
        if self._pool is None:  # as many threads as calls may ever be in flight here
            self._pool = ThreadPoolExecutor(os.cpu_count() or 1, f"denoise {self.name}")
        self._pool.submit(self._run_in_flight, batch)
        return True

    def _run_in_flight(self, batch: list[tuple[Client, Frame]]) -> None:
        try:
            self._run_batch(batch, overlap=True)
        except Exception as err:  # a camera's callback failed: the worker carries on
            # one redacted line: the error may name a camera's or a restream's URL
            log.error("denoiser %s: delivering a batch failed: %s", self.name, redact(str(err)))
        finally:
            with self._lock:
                self._in_flight.difference_update(client for client, _ in batch)
                self._settled.notify_all()
            self._wake.set()  # these cameras' next frames

    def _collect(self) -> list[tuple[Client, Frame]]:
        """At most one frame per client, starting one client further along each round; a
        client with a frame still in flight waits."""
        with self._lock:
            clients = [c for c in self._clients if c not in self._in_flight]
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

    def _began(self) -> float:
        now = time.monotonic()
        with self._lock:
            if self._calls == 0:
                self._busy_since = now
            self._calls += 1
        return now

    def _ended(self, started: float, frames: int, failed: bool) -> float:
        """Count one call that ran from ``started`` until now; returns now."""
        now = time.monotonic()
        with self._lock:
            self._calls -= 1
            if self._calls == 0:
                self.stats.busy_s += now - self._busy_since
            if failed:
                self.stats.failures += frames
            else:
                self.stats.batches += 1
                self.stats.frames += frames
                self.stats.last_batch = frames
            self._settled.notify_all()
        if self._observe and not failed:
            self._observe(frames, now - started)
        return now

    def _run_batch(self, batch: list[tuple[Client, Frame]], overlap: bool = False) -> None:
        started = self._began()
        for client, frame in batch:
            frame.marks["dequeued"] = started
            frame.original = frame.image  # the dashboard's noisy view; not a copy
            if frame.discontinuity or client.dstate is None:
                if client.dstate is not None:
                    self.service.release(client.dstate)
                client.dstate = self.service.new_state(client.strength)
        try:
            images, states = self.service.denoise(
                [frame.image for _, frame in batch],
                [client.dstate for client, _ in batch],
                overlap,
            )
        except Exception as err:
            if len(batch) == 1 or isinstance(err, ServiceUnavailable):
                self._ended(started, len(batch), failed=True)
                for client, frame in batch:
                    client.denoise_failed(frame, err)
            else:  # find the frame that failed; the others go through one by one
                self._ended(started, 0, failed=True)
                for item in batch:
                    self._run_batch([item])
            return
        done = self._ended(started, len(batch), failed=False)
        for (client, frame), image, state in zip(batch, images, states, strict=True):
            client.dstate = state
            frame.image = image
            frame.marks["denoised"] = done
            client.denoised(frame)
