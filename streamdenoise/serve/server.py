"""The ``serve`` process: cameras, one shared denoiser per model, HTTP, reload, shutdown.

:class:`Server` owns everything. :meth:`Server.apply` turns a config into running cameras:
cameras that are new start, removed ones stop (their files finalized), changed ones restart,
and the others are left alone — their counters keep counting. Cameras whose denoiser
settings match (backend, model, precision, device, threads) share one
:class:`~streamdenoise.serve.service.BatchWorker`; a worker no camera uses any more is
stopped. A camera that cannot be set up on a reload (a folder that cannot be created, a
backend that cannot load) is listed as failed with its reason; the rest keep running.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from streamdenoise.errors import UserError
from streamdenoise.pipeline import one_line
from streamdenoise.runtime import choose_backend
from streamdenoise.serve import config as serve_config
from streamdenoise.serve.camera import Camera, stop_all
from streamdenoise.serve.config import CameraConfig, ServeConfig
from streamdenoise.serve.service import BatchWorker, SharedAutoService, create_service
from streamdenoise.serve.telemetry import Telemetry

log = logging.getLogger(__name__)

#: How often camera states are looked at for the log.
WATCH_S = 1.0

#: The settings that make cameras share a denoiser: backend and model as resolved, then
#: precision, device, threads, engine_cache and still_camera as given.
DenoiserKey = tuple[str, str | None, str | None, str, int | None, Path | None, bool]


def denoiser_key(camera: CameraConfig) -> DenoiserKey:
    s = camera.settings
    backend, model = choose_backend(s["backend"], s["model"], s["device"], s["precision"])
    return (
        backend,
        model,
        s["precision"],
        s["device"],
        s["threads"],
        s["engine_cache"],
        s["still_camera"] and model == "auto",  # only auto chooses by it
    )


def denoiser_name(key: DenoiserKey) -> str:
    backend, model, precision, device, threads, _, still_camera = key
    name = backend + (f"/{model}" if model else "") + (f"/{precision}" if precision else "")
    name += f"@{device}" if device != "auto" else ""
    name += f"x{threads}" if threads else ""
    return name + ("+still" if still_camera else "")


@dataclass
class ReloadResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.problems:
            return "reload refused: " + "; ".join(self.problems)
        parts = [f"{k} {', '.join(v)}" for k, v in vars(self).items() if v and k != "unchanged"]
        return "reloaded: " + ("; ".join(str(p) for p in parts) if parts else "no changes")


class ServerBase(ABC):
    """What ``serve`` in one process and ``serve --ray`` share: start (the HTTP port, then
    every camera), reload, and the log line of each camera's change of state."""

    config: ServeConfig
    http = None
    #: Sections of the file that change only on a restart (a reload keeps the running ones).
    RESTART_ONLY = ("http", "ray")

    @abstractmethod
    def apply(self, config: ServeConfig, report: bool = True) -> ReloadResult: ...

    @abstractmethod
    def shutdown(self) -> None: ...

    @abstractmethod
    def _background(self) -> threading.Thread:
        """The thread that watches the cameras, started once they are."""

    def start(self) -> None:
        """Bind the HTTP port, then start every camera; UserError if either fails."""
        from streamdenoise.serve.http import HttpServer

        self.http = HttpServer(self, self.config.http)
        try:
            result = self.apply(self.config, report=False)
            if result.failed:
                name, reason = next(iter(result.failed.items()))
                raise UserError(f"camera {name}: {reason}")
        except BaseException:
            self.shutdown()
            raise
        self.http.start()
        self._background().start()

    def reload(self) -> ReloadResult:
        """Re-read the config file and apply it; a broken file changes nothing."""
        ray = self.config.ray
        config, problems = serve_config.load(self.config.path, ray.address if ray else None)
        if config is None:
            result = ReloadResult(problems=problems)
        else:
            for section in self.RESTART_ONLY:
                if getattr(config, section) != getattr(self.config, section):
                    log.warning("%s settings change only on a restart; kept the running ones",
                                section)  # fmt: skip
                    setattr(config, section, getattr(self.config, section))
            result = self.apply(config)
        log.warning("%s", result.summary())
        return result


def log_state_change(camera: str, before: str | None, state: str, why: str | None) -> None:
    """One line each time a camera changes state (the journal tells the story)."""
    if before is not None and state != before:
        log.warning("camera %s: %s -> %s%s", camera, before, state, f" ({why})" if why else "")


class Server(ServerBase):
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.telemetry = Telemetry(self.snapshot)
        self.cameras: dict[str, Camera] = {}
        self.failed: dict[str, str] = {}
        self.workers: dict[DenoiserKey, BatchWorker] = {}
        self._keys: dict[str, DenoiserKey] = {}
        self._lock = threading.RLock()
        self.started = time.monotonic()
        self.http = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="watch", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def _background(self) -> threading.Thread:
        return self._watcher

    def _watch(self) -> None:
        seen: dict[str, str] = {}
        while not self._stopping.wait(WATCH_S):
            cameras, _ = self.snapshot()
            for camera in cameras:
                state, before = camera.state, seen.get(camera.name)
                seen[camera.name] = state
                error = camera.source_error() if state != "live" and state != before else None
                log_state_change(camera.name, before, state, error)

    def shutdown(self) -> None:
        """Stop every camera (in parallel: each finalizes its own files), then the rest."""
        self._stopping.set()
        with self._lock:
            cameras = list(self.cameras.values())
            self.cameras.clear()
            stop_all(cameras)
            for worker in self.workers.values():
                worker.stop()
            self.workers.clear()
        if self.http is not None:
            self.http.close()

    # -- config changes ----------------------------------------------------------------------
    def apply(self, config: ServeConfig, report: bool = True) -> ReloadResult:
        """Start, stop and restart cameras to match ``config``; ``report``: log each camera
        that cannot be set up (at startup the caller reports the first and gives up)."""
        result = ReloadResult()
        with self._lock:
            old = self.cameras
            wanted = {n: c for n, c in config.cameras.items() if c.enabled}
            batch_changed = config.max_batch != self.config.max_batch
            self.config = config
            stopping = []
            for name, camera in list(old.items()):
                if name not in wanted:
                    result.removed.append(name)
                elif camera.config != wanted[name] or batch_changed:
                    result.restarted.append(name)
                else:
                    result.unchanged.append(name)
                    continue
                stopping.append(old.pop(name))
                self._keys.pop(name, None)
            stop_all(stopping)
            for camera in stopping:
                self.telemetry.forget_camera(camera.name, camera.config.outputs)
            for name in list(self.failed):
                if name not in wanted or name in result.restarted:
                    self.failed.pop(name)
            self._drop_idle_workers(batch_changed)
            for name, camera_config in wanted.items():
                if name in old:
                    continue
                if name not in result.restarted:
                    result.added.append(name)
                try:
                    self._start_camera(camera_config)
                    self.failed.pop(name, None)
                except UserError as err:
                    result.failed[name] = self.failed[name] = one_line(err)
                    if report:
                        log.error("camera %s: %s", name, self.failed[name])
            self._drop_idle_workers(False)
        return result

    def _start_camera(self, config: CameraConfig) -> None:
        key = denoiser_key(config)
        worker = self.workers.get(key)
        if worker is None:
            name = denoiser_name(key)
            backend, model, precision, device, threads, engine_cache, still_camera = key
            service = create_service(
                backend,
                model=model,
                precision=precision,
                device=device,
                threads=threads,
                engine_cache=engine_cache,
                still_camera=still_camera,
            )
            observe = self.telemetry.observer(name)
            max_batch = self.config.batch_for(str(service.describe().get("device", "cpu")))
            service.spread(min(max_batch, os.cpu_count() or 1))
            worker = BatchWorker(name, service, max_batch, observe)
            if isinstance(service, SharedAutoService):
                service.rate = worker.source_rate
                service.encoders = worker.source_encoders
                service.drops = worker.source_drops
            worker.start()
            self.workers[key] = worker
        camera = Camera(config, worker, self.telemetry.written)
        camera.start()
        self.cameras[config.name] = camera
        self._keys[config.name] = key

    def _drop_idle_workers(self, all_of_them: bool) -> None:
        used = set(self._keys.values())
        for key in list(self.workers):
            if all_of_them or key not in used:
                worker = self.workers.pop(key)
                worker.stop()
                self.telemetry.forget_denoiser(worker.name)

    # -- figures -------------------------------------------------------------------------------
    def snapshot(self) -> tuple[list[Camera], list[BatchWorker]]:
        with self._lock:
            return list(self.cameras.values()), list(self.workers.values())

    def unready(self) -> list[str]:
        """One line per reason the service is not ready; empty when it is."""
        cameras, _ = self.snapshot()
        reasons = [f"camera {n}: failed to start: {r}" for n, r in sorted(self.failed.items())]
        for camera in cameras:
            reason = camera.unready_reason()
            if reason:
                reasons.append(f"camera {camera.name}: {reason}")
        return reasons

    def status(self) -> dict:
        cameras, workers = self.snapshot()
        reasons = self.unready()
        return {
            "ready": not reasons,
            "reasons": reasons,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "cameras": [camera.status() for camera in cameras]
            + [
                {"name": n, "state": "failed", "ready": False, "reason": r}
                for n, r in sorted(self.failed.items())
            ],
            "disabled": sorted(n for n, c in self.config.cameras.items() if not c.enabled),
            "denoisers": [
                {
                    "name": w.name,
                    "cameras": w.clients,
                    "max_batch": w.max_batch,
                    "frames": w.stats.frames,
                    "batches": w.stats.batches,
                    "mean_batch": round(w.stats.frames / w.stats.batches, 2)
                    if w.stats.batches
                    else None,
                    **w.describe(),
                }
                for w in workers
            ],
        }

    def camera(self, name: str) -> Camera | None:
        with self._lock:
            return self.cameras.get(name)

    def camera_status(self, name: str) -> dict | None:
        camera = self.camera(name)
        return None if camera is None else camera.status()

    def camera_jpeg(self, name: str, view: str) -> bytes | None:
        camera = self.camera(name)
        return None if camera is None else camera.snapshot_jpeg(view)
