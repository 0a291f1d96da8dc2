"""``serve`` on a Ray cluster: this process places the actors and serves one HTTP port.

``streamdenoise serve CONFIG.yaml --ray ADDRESS`` (or a ``ray:`` section) runs the same file
on a cluster. This process is the Ray driver: it starts, per denoiser setting, ``replicas``
:class:`~streamdenoise.serve.actors.DenoiserReplica` actors (a GPU each, or a share of one,
where the cluster has GPUs), then the cameras in groups of ``cameras_per_worker``, each group
one :class:`~streamdenoise.serve.actors.StreamWorker` actor, spread over the nodes. Both
restart when they die (``max_restarts``): Ray starts them again, on another node if theirs is
gone.

**One view of the fleet.** Every second this process asks each actor for its report (camera
figures and its Prometheus families) and serves them all from its own HTTP port: the same
``/healthz``, ``/readyz``, ``/metrics``, ``/api/cameras`` and dashboard as a one-process
``serve``. Aggregating here rather than having each worker expose a port keeps one scrape
target and one token for the whole fleet, needs no service discovery of moving actors, and
lets ``/readyz`` and the metrics say which cameras are down *because their worker is*: a
worker that stops reporting shows its cameras as ``restarting`` until it is back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streamdenoise.errors import UsageError, UserError
from streamdenoise.pipeline import one_line
from streamdenoise.redact import redact
from streamdenoise.serve.config import RECORD_OUTPUT, CameraConfig, RayConfig, ServeConfig
from streamdenoise.serve.server import ReloadResult, ServerBase, denoiser_name, log_state_change
from streamdenoise.serve.telemetry import merge_families, state_families

log = logging.getLogger(__name__)

POLL_S = 1.0
#: An actor whose last report is older than this counts as lost (its process or node died).
STALE_S = 3.0
#: How long replicas may take to load their model before serve gives up.
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 5.0
#: Concurrent calls a replica takes (stream workers waiting for their batch).
REPLICA_CONCURRENCY = 256
#: The settings that make cameras share denoiser replicas, as written: a node of the cluster
#: resolves ``auto`` for its own hardware.
DENOISER_SETTINGS = (
    "backend", "model", "precision", "device", "threads", "engine_cache", "still_camera",
)  # fmt: skip
NEURAL_BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")


def ray_missing() -> str | None:
    """Why ``--ray`` cannot work in this installation, or None."""
    if not sys.stderr.isatty():  # read when Ray is imported: plain lines, each one, in a journal
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        import ray  # noqa: F401
    except ImportError:
        return "--ray needs Ray: pip install 'streamdenoise[ray]'"
    return None


def connect(config: RayConfig) -> None:
    """Join the cluster as its driver; UsageError with one line when that is not possible."""
    reason = ray_missing()
    if reason:
        raise UsageError(reason)
    import ray

    address = config.address
    if address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"bad Ray address {address!r}: expected host:port, or auto")
        try:
            socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise UsageError(f"cannot reach the Ray cluster at {address}: {reason}") from None
    try:
        ray.init(
            address=address,
            namespace=config.namespace,
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    except Exception as err:
        raise UsageError(f"cannot join the Ray cluster at {address}: {one_line(err)}") from None


# -- the plan: which actors run which cameras ---------------------------------------------------
def cluster_key(camera: CameraConfig) -> tuple:
    settings = dict(camera.settings)
    # only auto chooses by it: cameras of a pinned model share its replicas either way
    settings["still_camera"] = settings["still_camera"] and settings["model"] in (None, "auto")
    return tuple(settings[name] for name in DENOISER_SETTINGS)


def _portable(camera: CameraConfig) -> CameraConfig:
    """``camera`` with the paths it names made absolute, as seen from here: a worker runs in
    another working directory, on another machine (which must see the same files)."""
    settings = dict(camera.settings)
    source = settings["source"]
    if isinstance(source, str) and "://" not in source and Path(source).exists():
        settings["source"] = str(Path(source).absolute())
    outputs = []
    for output in settings["output"] or []:
        local = output not in (RECORD_OUTPUT, "null") and "://" not in output
        outputs.append(str(Path(output).expanduser().absolute()) if local else output)
    settings["output"] = outputs
    record = camera.record
    if record is not None and not Path(record.path).is_absolute():
        record = dataclasses.replace(record, path=str(Path(record.path).absolute()))
    return dataclasses.replace(camera, settings=settings, record=record)


@dataclass(frozen=True)
class Group:
    """Cameras run by one stream worker (named after its first camera)."""

    name: str
    key: tuple
    cameras: tuple[CameraConfig, ...]
    index: int  # among the groups of its key: which replica it prefers


def plan_groups(config: ServeConfig) -> dict[str, Group]:
    size = config.ray.cameras_per_worker
    by_key: dict[tuple, list[CameraConfig]] = {}
    for camera in config.cameras.values():
        if camera.enabled:
            by_key.setdefault(cluster_key(camera), []).append(_portable(camera))
    groups = {}
    for key, cameras in by_key.items():
        for index, start in enumerate(range(0, len(cameras), size)):
            members = tuple(cameras[start : start + size])
            groups[members[0].name] = Group(members[0].name, key, members, index)
    return groups


@dataclass
class _Actor:
    """A worker or replica and what it last reported."""

    label: str
    handle: object
    report: dict | None = None
    received: float = 0.0
    restarts: int = 0
    lost_since: float | None = None
    pending: object = None

    def fresh(self, now: float) -> bool:
        return self.report is not None and now - self.received <= STALE_S


@dataclass
class _Denoiser:
    name: str
    replicas: list[_Actor] = field(default_factory=list)
    info: dict = field(default_factory=dict)


class ClusterServer(ServerBase):
    """The head of ``serve`` on a cluster; the HTTP service talks to it as to ``Server``."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.telemetry = ClusterTelemetry(self)
        self.groups: dict[str, Group] = {}
        self.workers: dict[str, _Actor] = {}
        self.denoisers: dict[tuple, _Denoiser] = {}
        self.failed: dict[str, str] = {}
        self._lock = threading.RLock()
        self.started = time.monotonic()
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="poll", daemon=True)
        self._states: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def _background(self) -> threading.Thread:
        return self._poller

    def shutdown(self) -> None:
        """Stop every stream worker (each finalizes its files), then the replicas."""
        import ray

        self._stopping.set()
        with self._lock:
            self._stop_groups(list(self.groups))
            for key in list(self.denoisers):
                self._drop_denoiser(key)
        if self.http is not None:
            self.http.close()
        with contextlib.suppress(Exception):
            ray.shutdown()

    # -- config changes ----------------------------------------------------------------------
    def apply(self, config: ServeConfig, report: bool = True) -> ReloadResult:
        """Start and stop stream workers (and replicas) to match ``config``; a group whose
        cameras and settings are unchanged keeps running."""
        result = ReloadResult()
        with self._lock:
            old_cameras = {c.name: c for g in self.groups.values() for c in g.cameras}
            batch_changed = config.max_batch != self.config.max_batch
            self.config = config
            wanted = plan_groups(config)
            keep = {n for n, g in self.groups.items() if wanted.get(n) == g and not batch_changed}
            self._stop_groups([n for n in self.groups if n not in keep])
            used = {g.key for g in wanted.values()}
            for key in list(self.denoisers):
                if key not in used or batch_changed:
                    self._drop_denoiser(key)
                else:  # cameras came or went: what `model: auto` chooses for
                    expected = self._cameras_per_replica(key)
                    for replica in self.denoisers[key].replicas:
                        replica.handle.expect.remote(expected)
            for name in list(self.failed):
                if not any(name in (c.name for c in g.cameras) for g in wanted.values()):
                    self.failed.pop(name)
            new_cameras = {c.name: c for g in wanted.values() for c in g.cameras}
            for name in old_cameras:
                if name not in new_cameras:
                    result.removed.append(name)
            for group_name, group in wanted.items():
                for camera in group.cameras:
                    if group_name in keep:
                        result.unchanged.append(camera.name)
                    elif camera.name in old_cameras:
                        result.restarted.append(camera.name)
                    else:
                        result.added.append(camera.name)
                if group_name in keep:
                    continue
                try:
                    self._start_group(group)
                except UserError as err:
                    for camera in group.cameras:
                        result.failed[camera.name] = self.failed[camera.name] = one_line(err)
                    if report:
                        log.error("cameras %s: %s", group_name, one_line(err))
        return result

    def _denoiser(self, key: tuple) -> _Denoiser:
        """The replicas of ``key``, started and ready (none for classical filters)."""
        denoiser = self.denoisers.get(key)
        if denoiser is not None:
            return denoiser
        import ray

        from streamdenoise.serve.actors import DenoiserReplica

        settings = dict(zip(DENOISER_SETTINGS, key, strict=True))
        backend = settings.pop("backend")
        name = denoiser_name((backend, *key[1:]))
        denoiser = _Denoiser(name)
        if backend != "auto" and backend not in NEURAL_BACKENDS:
            self.denoisers[key] = denoiser  # runs inside each stream worker
            return denoiser
        ray_config = self.config.ray
        gpus = ray_config.gpus_per_replica
        if gpus is None:
            gpus = 1.0 if _cluster_has("GPU") else 0.0
        options = {
            "num_cpus": ray_config.cpus_per_replica,
            "num_gpus": gpus,
            "resources": dict(ray_config.replica_resources),
            "max_restarts": ray_config.max_restarts,
            "max_task_retries": 0,  # a call that dies with it is retried on another replica
            "max_concurrency": REPLICA_CONCURRENCY,
            "scheduling_strategy": "SPREAD",
        }
        if ray_config.memory_per_replica:
            options["memory"] = ray_config.memory_per_replica
        _check_fits(options, f"a replica of denoiser {name}")
        plan = {
            "max_batch": self.config.max_batch,
            "cpus": ray_config.cpus_per_replica,
            "cameras": self._cameras_per_replica(key),
        }
        remote = ray.remote(DenoiserReplica)
        for index in range(ray_config.replicas):
            label = f"denoiser {name}#{index}"
            handle = remote.options(name=label, **options).remote(name, index, backend,
                                                                  settings, plan)  # fmt: skip
            denoiser.replicas.append(_Actor(label, handle))
        self.denoisers[key] = denoiser
        try:
            infos = ray.get([r.handle.ready.remote() for r in denoiser.replicas],
                            timeout=READY_TIMEOUT_S)  # fmt: skip
        except ray.exceptions.GetTimeoutError:
            self._drop_denoiser(key)
            raise UserError(
                f"denoiser {name}: its replicas did not start within {READY_TIMEOUT_S:.0f} s "
                "(are the nodes that fit them busy?)"
            ) from None
        except ray.exceptions.RayError as err:
            self._drop_denoiser(key)
            raise UserError(f"denoiser {name}: {one_line(err)}") from None
        errors = [info["error"] for info in infos if "error" in info]
        if errors:
            self._drop_denoiser(key)
            raise UserError(f"denoiser {name}: {errors[0]}")
        denoiser.info = {k: v for k, v in infos[0].items() if k not in ("node", "pid")}
        for replica, info in zip(denoiser.replicas, infos, strict=True):
            replica.report = {**info, "replica": denoiser.replicas.index(replica)}
            replica.received = time.monotonic()
        log.warning("denoiser %s: %d replica(s) on %s", name, len(infos),
                    ", ".join(sorted({_short(i["node"]) for i in infos})))  # fmt: skip
        return denoiser

    def _cameras_per_replica(self, key: tuple) -> int:
        """How many cameras one replica of ``key`` should expect (what ``model: auto``
        chooses for): its share of them, and at least a whole stream worker's, since a
        worker sends all its cameras to one replica."""
        sizes = [len(g.cameras) for g in plan_groups(self.config).values() if g.key == key]
        share = math.ceil(sum(sizes) / max(1, self.config.ray.replicas))
        return max([share, *sizes, 1])

    def _start_group(self, group: Group) -> None:
        import ray

        from streamdenoise.serve.actors import DenoiserPlan, ReplicaHandle, StreamWorker

        denoiser = self._denoiser(group.key)
        settings = dict(zip(DENOISER_SETTINGS, group.key, strict=True))
        backend = settings.pop("backend")
        ray_config = self.config.ray
        plan = DenoiserPlan(
            name=denoiser.name,
            backend=backend,
            settings=settings,
            max_batch=self.config.max_batch,
            replicas=[
                ReplicaHandle(r.label, i, r.report["node"]) for i, r in enumerate(denoiser.replicas)
            ],
            call_timeout_s=ray_config.call_timeout_s,
            info=denoiser.info,
        )
        count = len(group.cameras)
        options = {
            "num_cpus": ray_config.cpus_per_camera * count,
            "resources": {k: v * count for k, v in ray_config.camera_resources.items()},
            "max_restarts": ray_config.max_restarts,
            "max_task_retries": 0,
            "max_concurrency": 4,  # reports and snapshots while stop() finalizes
            "scheduling_strategy": "SPREAD",
        }
        if ray_config.memory_per_camera:
            options["memory"] = ray_config.memory_per_camera * count
        label = f"cameras {group.name}"
        _check_fits(options, label)
        handle = (
            ray.remote(StreamWorker)
            .options(name=label, **options)
            .remote(group.name, list(group.cameras), plan, group.index)
        )
        self.groups[group.name] = group
        self.workers[group.name] = _Actor(label, handle)
        for camera in group.cameras:
            self.failed.pop(camera.name, None)

    def _stop_groups(self, names: list[str]) -> None:
        """Stop these workers (in parallel), their files finalized, then end the actors."""
        import ray

        actors = [self.workers.pop(name) for name in names if name in self.workers]
        for name in names:
            self.groups.pop(name, None)
        calls = [actor.handle.stop.remote() for actor in actors]
        if calls:
            with contextlib.suppress(Exception):
                ray.wait(calls, num_returns=len(calls), timeout=STOP_TIMEOUT_S)
        _end(actors)

    def _drop_denoiser(self, key: tuple) -> None:
        denoiser = self.denoisers.pop(key, None)
        _end(denoiser.replicas if denoiser else [])

    # -- watching the actors -------------------------------------------------------------------
    def _actors(self) -> list[_Actor]:
        with self._lock:
            replicas = [r for d in self.denoisers.values() for r in d.replicas]
            return list(self.workers.values()) + replicas

    def _poll(self) -> None:
        """Ask every actor for its report once a second; an actor that does not answer (its
        node died, it is restarting) keeps its one call waiting and holds up nobody."""
        import ray

        while not self._stopping.is_set():
            round_end = time.monotonic() + POLL_S
            actors = self._actors()
            for actor in actors:
                if actor.pending is None:
                    actor.pending = actor.handle.report.remote()
            by_ref = {actor.pending: actor for actor in actors}
            done = []
            if by_ref:
                done, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=POLL_S * 0.8)
            now = time.monotonic()
            for ref in done:
                actor = by_ref[ref]
                actor.pending = None
                try:
                    report = ray.get(ref)
                except ray.exceptions.RayError:
                    continue  # died or restarting: the next call waits for the new one
                self._received(actor, report, now)
            for actor in actors:
                if actor.lost_since is None and actor.report is not None and not actor.fresh(now):
                    actor.lost_since = actor.received
                    log.warning("%s: lost (no report for %.0f s; node %s)", actor.label,
                                now - actor.received, _short(actor.report.get("node")))  # fmt: skip
            self._log_states()
            self._stopping.wait(max(round_end - time.monotonic(), 0.0))

    def _received(self, actor: _Actor, report: dict, now: float) -> None:
        before = actor.report
        if before is not None and "started" in before and before["started"] != report["started"]:
            actor.restarts += 1
            away = f" after {now - actor.lost_since:.1f} s" if actor.lost_since else ""
            log.warning("%s: restarted on node %s%s", actor.label, _short(report["node"]), away)
        actor.report, actor.received, actor.lost_since = report, now, None

    def _log_states(self) -> None:
        for camera in self.camera_rows():
            state, before = camera["state"], self._states.get(camera["name"])
            self._states[camera["name"]] = state
            log_state_change(camera["name"], before, state,
                             camera.get("reason") if state != "live" else None)  # fmt: skip

    # -- figures -------------------------------------------------------------------------------
    def camera_rows(self) -> list[dict]:
        """Every camera of the plan, as its worker last reported it (or why it cannot)."""
        now = time.monotonic()
        rows = []
        with self._lock:
            groups = [(g, self.workers.get(n)) for n, g in self.groups.items()]
            failed = dict(self.failed)
        for group, actor in groups:
            report = actor.report if actor else None
            by_name = {c["name"]: c for c in (report or {}).get("cameras", [])}
            for camera in group.cameras:
                row = {"name": camera.name, "worker": group.name, "restarts": actor.restarts}
                if report is not None:
                    row |= {"node": _short(report["node"]), "replica": report["replica"]}
                if camera.name in (report or {}).get("failed", {}):
                    reason = report["failed"][camera.name]
                    row |= {"state": "failed", "ready": False, "reason": reason}
                elif camera.name not in by_name:
                    row |= {"state": "starting", "ready": False,
                            "reason": "its worker is starting (waiting for a node)"}  # fmt: skip
                elif not actor.fresh(now):
                    away = now - (actor.lost_since or actor.received)
                    reason = f"worker lost with node {row['node']}: restarting for {away:.0f} s"
                    row |= {**by_name[camera.name], "fps_in": 0.0, "fps_out": 0.0}
                    row |= {"state": "restarting", "ready": False, "reason": reason}
                else:
                    row = {**by_name[camera.name], **row}
                rows.append(row)
        rows += [{"name": n, "state": "failed", "ready": False, "reason": r}
                 for n, r in sorted(failed.items())]  # fmt: skip
        return rows

    def denoiser_rows(self) -> list[dict]:
        now = time.monotonic()
        rows = []
        with self._lock:
            denoisers = list(self.denoisers.values())
            workers = list(self.workers.values())
        for denoiser in denoisers:
            for index, replica in enumerate(denoiser.replicas):
                report = replica.report or {}
                row = {k: v for k, v in report.items() if k not in ("families", "started")}
                frames, batches = report.get("frames", 0), report.get("batches", 0)
                row |= {
                    "name": denoiser.name,
                    "replica": index,
                    "node": _short(report.get("node")),
                    "up": replica.fresh(now),
                    "restarts": replica.restarts,
                    "mean_batch": round(frames / batches, 2) if batches else None,
                }
                rows.append(row)
        for worker in workers:  # classical filters: one inside each stream worker
            local = (worker.report or {}).get("denoiser")
            if local:
                batches = local.get("batches", 0)
                mean = round(local["frames"] / batches, 2) if batches else None
                rows.append({**local, "worker": worker.label, "mean_batch": mean})
        return rows

    def snapshot(self) -> tuple[list, list]:
        return self.camera_rows(), self.denoiser_rows()

    def unready(self) -> list[str]:
        rows = self.camera_rows()
        reasons = [f"camera {c['name']}: {c['reason']}" for c in rows if not c["ready"]]
        now = time.monotonic()
        with self._lock:
            denoisers = list(self.denoisers.values())
        for denoiser in denoisers:
            if denoiser.replicas and not any(r.fresh(now) for r in denoiser.replicas):
                reasons.append(f"denoiser {denoiser.name}: no replica answers")
        return reasons

    def status(self) -> dict:
        cameras, denoisers = self.snapshot()
        reasons = self.unready()
        return {
            "ready": not reasons,
            "reasons": reasons,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "cameras": cameras,
            "disabled": sorted(n for n, c in self.config.cameras.items() if not c.enabled),
            "denoisers": denoisers,
            "cluster": {"address": self.config.ray.address, "nodes": _nodes()},
        }

    def camera_status(self, name: str) -> dict | None:
        return next((c for c in self.camera_rows() if c["name"] == name), None)

    def camera_jpeg(self, name: str, view: str) -> bytes | None:
        import ray

        with self._lock:
            owner = next((n for n, g in self.groups.items()
                          if name in (c.name for c in g.cameras)), None)  # fmt: skip
            actor = self.workers.get(owner) if owner else None
        if actor is None or not actor.fresh(time.monotonic()):
            return None
        try:
            return ray.get(actor.handle.snapshot.remote(name, view), timeout=5)
        except ray.exceptions.RayError:
            return None


class ClusterTelemetry:
    """``/metrics`` of the whole fleet: the families every actor reported, merged."""

    def __init__(self, server: ClusterServer) -> None:
        self.server = server
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        server, now = self.server, time.monotonic()
        with server._lock:
            workers = list(server.workers.values())
            denoisers = list(server.denoisers.values())
        sources = []
        for worker in workers:
            if worker.fresh(now):
                sources.append((worker.report["families"], {"worker": worker.label}))
        for denoiser in denoisers:
            for index, replica in enumerate(denoiser.replicas):
                if replica.fresh(now) and "families" in replica.report:
                    sources.append((replica.report["families"], {"replica": str(index)}))
        lost = [(c["name"], c["state"], c["ready"]) for c in server.camera_rows()
                if c["state"] in ("restarting", "starting", "failed")]  # fmt: skip
        sources.append((state_families(lost), {}))
        yield from merge_families(sources)
        up = GaugeMetricFamily(
            "streamdenoise_actor_up", "1 while the actor reports", labels=["actor", "node"]
        )
        restarts = CounterMetricFamily(
            "streamdenoise_actor_restarts", "Restarts of a worker or replica", labels=["actor"]
        )
        for actor in workers + [r for d in denoisers for r in d.replicas]:
            node = _short((actor.report or {}).get("node"))
            up.add_metric([actor.label, node], 1.0 if actor.fresh(now) else 0.0)
            restarts.add_metric([actor.label], actor.restarts)
        yield from (up, restarts)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# -- the cluster ----------------------------------------------------------------------------
def _end(actors: list[_Actor]) -> None:
    """End these actors for good, and wait until their names are free for their successors."""
    import ray

    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor.handle, no_restart=True)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for actor in actors:
        while time.monotonic() < deadline:
            try:
                ray.get_actor(actor.label)
            except ValueError:
                break
            time.sleep(0.1)


def _short(node: str | None) -> str:
    """A node's id as shown: its first 8 hex digits."""
    return (node or "")[:8] or "?"


def _nodes() -> list[dict]:
    import ray

    with contextlib.suppress(Exception):
        return [
            {
                "node": _short(n["NodeID"]),
                "address": n["NodeManagerAddress"],
                "alive": n["Alive"],
                "resources": {k: v for k, v in n["Resources"].items() if not k.startswith("node:")},
            }
            for n in ray.nodes()
        ]
    return []


def _cluster_has(resource: str) -> bool:
    return any(n["alive"] and n["resources"].get(resource) for n in _nodes())


def _check_fits(options: dict, what: str) -> None:
    """UsageError unless one live node of the cluster has every resource ``options`` asks for
    (Ray would otherwise wait for such a node forever)."""
    wanted = {"CPU": options.get("num_cpus", 0), "GPU": options.get("num_gpus", 0),
              "memory": options.get("memory", 0), **options.get("resources", {})}  # fmt: skip
    wanted = {k: v for k, v in wanted.items() if v}
    nodes = [n for n in _nodes() if n["alive"]]
    if any(all(n["resources"].get(k, 0) >= v for k, v in wanted.items()) for n in nodes):
        return
    asked = ", ".join(f"{k} {v:g}" for k, v in wanted.items())
    raise UsageError(redact(f"no node of the cluster has {asked} for {what}"))
