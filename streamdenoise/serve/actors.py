"""The two actors of ``serve`` on a Ray cluster: stream workers and denoiser replicas.

:class:`StreamWorker` runs a group of cameras exactly as ``serve`` runs them in one process —
the same :class:`~streamdenoise.serve.camera.Camera` (capture → queue → outputs) and the same
round-robin :class:`~streamdenoise.serve.service.BatchWorker` — but the batch worker's service
is a :class:`RemoteService`: each batch is one call of a :class:`DenoiserReplica`, an actor
that holds the network (on a GPU node when there is one). Classical filters keep history
they cannot hand out, so they run inside the stream worker instead, as in ``serve``.

**What travels.** Frames go as ordinary call arguments and return values: Ray puts those
above 100 KiB into the object store of the node that made them and the other side maps them
without a copy when it is on the same node (``benchmarks/results/ray_fleet.md`` measured the
alternatives per 1080p frame). A camera's recurrent state travels with its frame as in
``serve``, but by reference: the replica puts each stream's new state into its own node's
object store and returns the reference; the stream worker sends it back with the camera's
next frame. The state's bytes (50 MB for the temporal model at 1080p in float32) so stay on
the replica's node while the same replica serves the camera, and cross the network only when
another replica takes over. The replica itself keeps nothing between calls.

**Faults.** A replica that dies takes the states it stored with it: the cameras it served
start a fresh history (as after a reconnect). The call in flight is retried once on the next
replica; if that fails too, its frames are dropped and counted as ``denoise_failures``. A
stream worker that dies is restarted by Ray (on another node if its node is gone) and starts
its cameras again: they reconnect and record into new segments, and a segment the dead
worker left open is salvaged (:mod:`streamdenoise.serve.recording`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError

from streamdenoise.errors import UserError
from streamdenoise.pipeline import one_line
from streamdenoise.redact import redact_obj
from streamdenoise.serve.camera import Camera, stop_all
from streamdenoise.serve.config import CPU_MAX_BATCH, GPU_MAX_BATCH, CameraConfig
from streamdenoise.serve.service import (
    BatchWorker,
    DenoiserStats,
    DenoiseService,
    ServiceUnavailable,
    SharedAutoService,
    create_service,
    summed_rate,
)
from streamdenoise.serve.telemetry import Telemetry

log = logging.getLogger(__name__)

#: A replica that failed a call is passed over for this long.
DOWN_S = 5.0
#: A caller counts towards a replica's cameras while it called within this window.
CALLER_WINDOW_S = 10.0


class _Caller(NamedTuple):
    """What a stream worker told a replica with its last call."""

    seen: float  # time.monotonic() of the call
    cameras: int
    rates: list[float | None]  # its cameras' frame rates (None: not known yet)
    drops: int  # frames their queues have dropped so far


def batch_for(info: dict, max_batch: int | None) -> int:
    """Frames per call: the configured figure, else 16 on a GPU and 1 on a CPU."""
    if max_batch is not None:
        return max_batch
    return GPU_MAX_BATCH if str(info.get("device", "cpu")).startswith("cuda") else CPU_MAX_BATCH


def _setup() -> None:
    from streamdenoise.commands.run import setup_logging

    setup_logging()


# -- the denoiser replica ---------------------------------------------------------------------
@dataclass
class _Request:
    frames: Sequence
    states: list
    done: threading.Event = field(default_factory=threading.Event)
    images: list | None = None
    error: BaseException | None = None


class _Merger:
    """Concurrent calls in, one call of the service per batch out: the requests waiting when
    the service frees up are joined (whole requests, in arrival order) up to ``max_batch``
    frames, so several stream workers fill one batch of a GPU."""

    def __init__(self, service: DenoiseService, max_batch: int, observe) -> None:
        self.service = service
        self.max_batch = max_batch
        self.stats = DenoiserStats()
        self._observe = observe
        self._pending: deque[_Request] = deque()
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="denoise", daemon=True).start()

    def denoise(self, frames: Sequence, states: list) -> tuple[list, list]:
        request = _Request(frames, states)
        with self._ready:
            self._pending.append(request)
            self._ready.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.images, request.states

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                batch = [self._pending.popleft()]
                size = len(batch[0].frames)
                while self._pending and size + len(self._pending[0].frames) <= self.max_batch:
                    size += len(self._pending[0].frames)
                    batch.append(self._pending.popleft())
            self._call(batch)

    def _call(self, batch: list[_Request]) -> None:
        frames = [frame for request in batch for frame in request.frames]
        states = [state for request in batch for state in request.states]
        started = time.monotonic()
        try:
            images, states = self.service.denoise(frames, states)
        except Exception as err:
            if len(batch) > 1:  # one caller's bad frame fails that caller's request only
                for request in batch:
                    self._call([request])
                return
            self.stats.failures += len(frames)
            batch[0].error = err
            batch[0].done.set()
            return
        seconds = time.monotonic() - started
        self.stats.batches += 1
        self.stats.frames += len(frames)
        self.stats.last_batch = len(frames)
        self.stats.busy_s += seconds
        self._observe(len(frames), seconds)
        start = 0
        for request in batch:
            end = start + len(request.frames)
            request.images, request.states = images[start:end], states[start:end]
            request.done.set()
            start = end


class DenoiserReplica:
    """One shared denoiser as a Ray actor (threaded: many stream workers call at once)."""

    def __init__(self, name: str, index: int, backend: str, settings: dict, plan: dict) -> None:
        _setup()
        self.name, self.index = name, index
        context = ray.get_runtime_context()
        self.node, self.pid, self.started = context.get_node_id(), os.getpid(), time.time()
        self.states_lost = 0
        self._callers: dict[str, _Caller] = {}
        #: How many cameras the head expects this replica to serve.
        self._expected_cameras = int(plan.get("cameras", 1))
        self.error: str | None = None
        self.telemetry = Telemetry(lambda: ([], [self]))
        try:
            self.service = create_service(backend, **settings)
            self.info = self.service.describe()
            if self.info.get("shared") != "batched":
                raise UserError(
                    f"{self.info.get('backend')} keeps each stream's history inside the filter; "
                    "on a cluster name a neural backend (torch, openvino, onnxruntime, tensorrt)"
                )
        except UserError as err:  # reported by ready(): one line, not a remote traceback
            self.error = one_line(err)
            return
        if isinstance(self.service, SharedAutoService):
            # its cameras decode and encode in their stream workers, on CPUs of their own
            self.service.rate, self.service.codec_here = self._source_rate, False
            self.service.drops = lambda: sum(c.drops for c in list(self._callers.values()))
        self.max_batch = batch_for(self.info, plan.get("max_batch"))
        self.service.spread(min(self.max_batch, max(1, int(plan.get("cpus", 1)))))
        self.merger = _Merger(self.service, self.max_batch, self.telemetry.observer(name))

    def __repr__(self) -> str:  # Ray's log prefix and dashboard name
        return f"denoiser {self.name}#{self.index}"

    def ready(self) -> dict:
        """What the head needs to know (or ``error``: why this replica cannot run)."""
        if self.error is not None:
            return {"error": self.error}
        return {"node": self.node, "pid": self.pid, "max_batch": self.max_batch, **self.info}

    def denoise(
        self, frames: list, refs: list, strengths: list, caller: tuple[str, int, list, int]
    ) -> tuple[list, list]:
        """Denoise ``frames[i]`` with the state behind ``refs[i]`` (None: a fresh stream of
        strength ``strengths[i]``); returns the frames and references to the new states.
        ``caller``: the stream worker's name, its camera count, their frame rates and the
        frames their queues have dropped so far."""
        name, cameras, rates, drops = caller
        self._callers[name] = _Caller(time.monotonic(), cameras, rates, drops)
        states = [self._state(ref, strength) for ref, strength in zip(refs, strengths, strict=True)]
        images, states = self.merger.denoise(frames, states)
        return images, [ray.put(state) for state in states]

    def expect(self, cameras: int) -> None:
        """The head's count of the cameras this replica serves, after a reload changed it."""
        self._expected_cameras = cameras

    def _source_rate(self) -> float | None:
        """What ``model: auto`` chooses for and is judged by: the cameras the head expects
        here (or more, when more call), at the rate of those that called lately (the first
        call may come before the others'; a stream worker that stopped calling no longer
        counts)."""
        rates = [rate for caller in self._live_callers() for rate in caller.rates]
        return summed_rate(rates, self._expected_cameras)

    def _live_callers(self) -> list[_Caller]:
        """The stream workers that called within :data:`CALLER_WINDOW_S`."""
        now = time.monotonic()
        # a copy first (one C call): callers add themselves from other threads meanwhile
        return [c for c in list(self._callers.values()) if now - c.seen < CALLER_WINDOW_S]

    def _state(self, ref, strength: float | None):
        if ref is not None:
            try:
                return ray.get(ref, timeout=5)
            except RayError:  # its replica died with it: this stream starts afresh
                self.states_lost += 1
        return self.service.new_state(strength)

    # what the metrics read (the shape of a BatchWorker)
    @property
    def stats(self) -> DenoiserStats:
        return self.merger.stats

    @property
    def clients(self) -> int:
        return sum(caller.cameras for caller in self._live_callers())

    def describe(self) -> dict:
        return self.info

    def report(self) -> dict:
        """What the head shows: figures, and the service as it is now (``model: auto``
        names its tier once chosen)."""
        stats = self.stats
        return {
            "replica": self.index,
            "node": self.node,
            "pid": self.pid,
            "started": self.started,
            "cameras": self.clients,
            "max_batch": self.max_batch,
            "frames": stats.frames,
            "batches": stats.batches,
            "failures": stats.failures,
            "states_lost": self.states_lost,
            "busy_s": round(stats.busy_s, 3),
            "families": list(self.telemetry.registry.collect()),
            **redact_obj(self.service.describe()),
        }


# -- the stream side ------------------------------------------------------------------------
@dataclass
class RemoteState:
    """A camera's state as its stream worker holds it: a reference to the state its replica
    stored (None: the stream starts afresh) and the camera's strength."""

    strength: float | None
    ref: Any = None


@dataclass
class ReplicaHandle:
    """A replica by its actor name (a handle in a worker's constructor arguments would put
    them into the object store, where a restart could not find them once they are gone)."""

    name: str
    index: int
    node: str
    actor: Any = None


class RemoteService(DenoiseService):
    """The service of a stream worker's batch worker: each call goes to one replica — one on
    this node if there is one, else the worker's own pick of the others, so that a camera's
    states stay where they were stored — and to the next one when that replica fails."""

    def __init__(
        self,
        name: str,
        replicas: list[ReplicaHandle],
        node: str,
        first: int,
        timeout_s: float,
        info: dict,
    ) -> None:
        for replica in replicas:
            replica.actor = ray.get_actor(replica.name)
        others = [r for r in replicas if r.node != node]
        shift = first % len(others) if others else 0
        self.order = [r for r in replicas if r.node == node] + others[shift:] + others[:shift]
        self.name = name
        self.timeout_s = timeout_s
        self.info = info
        self.current = self.order[0]
        self.retried = 0
        self.cameras: Callable[[], int] = lambda: 0
        self.rates: Callable[[], list[float | None]] = list
        self.drops: Callable[[], int] = lambda: 0
        self.caller = ""
        self._down: dict[int, float] = {}

    def new_state(self, strength: float | None = None) -> RemoteState:
        return RemoteState(strength)

    def release(self, state: RemoteState) -> None:
        state.ref = None  # the last reference gone, Ray frees the stored state

    def describe(self) -> dict:
        return {**self.info, "replica": self.current.index}

    def _pick(self) -> ReplicaHandle:
        now = time.monotonic()
        for replica in self.order:
            if self._down.get(replica.index, 0.0) <= now:
                return replica
        return self.current  # all failed lately: try again where we were

    def denoise(self, frames, states, overlap=False):
        error: BaseException | None = None
        for attempt in range(2):  # the call, then once more on the next replica
            replica = self.current = self._pick()
            call = replica.actor.denoise.remote(
                list(frames),
                [s.ref for s in states],
                [s.strength for s in states],
                (self.caller, self.cameras(), self.rates(), self.drops()),
            )
            try:
                images, refs = ray.get(call, timeout=self.timeout_s)
            except RayTaskError as err:  # the service raised: that is about the frames
                cause = err.cause if isinstance(err.cause, Exception) else err
                raise cause from None
            except (RayError, GetTimeoutError) as err:
                with contextlib.suppress(Exception):
                    ray.cancel(call)
                if self._down.get(replica.index, 0.0) <= time.monotonic():
                    log.warning("denoiser %s#%d failed a call (%s); trying another replica",
                                self.name, replica.index, _reason(err))  # fmt: skip
                self._down[replica.index] = time.monotonic() + DOWN_S
                self.retried += attempt == 0
                error = err
                continue
            for state, ref in zip(states, refs, strict=True):
                state.ref = ref
            return images, list(states)
        raise ServiceUnavailable(
            f"denoiser {self.name}: no replica took the frames ({_reason(error)})"
        )


def _reason(error: BaseException | None) -> str:
    if isinstance(error, GetTimeoutError):
        return "no answer in time"
    return type(error).__name__


@dataclass
class DenoiserPlan:
    """How a stream worker gets its frames denoised: by ``replicas`` (remote), or, where
    there are none (classical filters), by a service of its own made from ``settings``."""

    name: str
    backend: str
    settings: dict
    max_batch: int | None
    replicas: list[ReplicaHandle]
    call_timeout_s: float
    info: dict = field(default_factory=dict)


class StreamWorker:
    """A group of cameras as one Ray actor (threaded: reports while the cameras run)."""

    def __init__(self, group: str, cameras: list[CameraConfig], plan: DenoiserPlan, index: int):
        _setup()
        self.group = group
        context = ray.get_runtime_context()
        self.node, self.pid, self.started = context.get_node_id(), os.getpid(), time.time()
        with warnings.catch_warnings():  # the property reads Ray's deprecated actor_id
            warnings.simplefilter("ignore")
            self.restarted = bool(context.was_current_actor_reconstructed)
        self.cameras: dict[str, Camera] = {}
        self.failed: dict[str, str] = {}
        self.telemetry = Telemetry(self._snapshot)
        self.remote = bool(plan.replicas)
        if self.remote:
            service = RemoteService(
                plan.name, plan.replicas, self.node, index, plan.call_timeout_s, plan.info
            )
            service.caller, service.cameras = group, lambda: len(self.cameras)
            service.rates = lambda: [camera.fps() for camera in self.cameras.values()]
            service.drops = lambda: sum(camera.drops() for camera in self.cameras.values())
            observe = None
            max_batch = batch_for(plan.info, plan.max_batch)
        else:
            service = create_service(plan.backend, **plan.settings)
            observe = self.telemetry.observer(plan.name)
            max_batch = batch_for(service.describe(), plan.max_batch)
        self.worker = BatchWorker(plan.name, service, max_batch, observe)
        self.worker.start()
        for config in cameras:
            try:
                camera = Camera(config, self.worker, self.telemetry.written)
                camera.start()
            except UserError as err:
                self.failed[config.name] = one_line(err)
                log.error("camera %s: %s", config.name, self.failed[config.name])
                continue
            self.cameras[config.name] = camera
        if self.restarted:
            log.warning("cameras %s: restarted; reconnecting", ", ".join(self.cameras))

    def __repr__(self) -> str:  # Ray's log prefix and dashboard name: names, never sources
        return f"cameras {self.group}"

    def _snapshot(self) -> tuple[list, list]:
        return list(self.cameras.values()), [] if self.remote else [self.worker]

    def report(self) -> dict:
        """Everything the head shows of these cameras (strings already redacted)."""
        worker = self.worker
        return {
            "group": self.group,
            "node": self.node,
            "pid": self.pid,
            "started": self.started,
            "cameras": [camera.status() for camera in self.cameras.values()],
            "failed": dict(self.failed),
            "replica": worker.service.current.index if self.remote else None,
            "retried": worker.service.retried if self.remote else 0,
            "denoiser": None
            if self.remote
            else {
                "name": worker.name,
                "cameras": worker.clients,
                "max_batch": worker.max_batch,
                "frames": worker.stats.frames,
                "batches": worker.stats.batches,
                **worker.describe(),
            },
            "families": list(self.telemetry.registry.collect()),
        }

    def snapshot(self, name: str, view: str) -> bytes | None:
        camera = self.cameras.get(name)
        return None if camera is None else camera.snapshot_jpeg(view)

    def stop(self) -> bool:
        """Stop every camera (each finalizes its files), then the batch worker."""
        stop_all(list(self.cameras.values()))
        self.cameras.clear()
        self.worker.stop()
        return True
