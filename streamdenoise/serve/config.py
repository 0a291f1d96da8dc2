"""The ``serve`` configuration file: ``http:``, ``defaults:``, ``denoiser:``, ``cameras:``.

Every camera takes the settings ``run`` takes (same names, same parsers and defaults — see
:mod:`streamdenoise.settings`) plus ``record``, ``enabled`` and ``ready_budget``;
``defaults:`` fills in what a camera leaves out. :func:`load` collects *every* problem in
the file before giving up, so ``serve --check`` can list them all, one line each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamdenoise import settings as table
from streamdenoise.access import MIN_TOKEN_LENGTH, is_loopback
from streamdenoise.errors import UsageError
from streamdenoise.redact import redact

#: Settings ``run`` knows that make no sense for a service that runs until stopped (``bind``
#: is the preview's; the service's own address is ``http.bind``; ``two_pass`` holds frames
#: back, which a shared live denoiser does not).
RUN_ONLY = ("max_frames", "duration", "stats_json", "quiet", "bind", "two_pass")
#: The settings of ``run`` a camera takes.
CAMERA_SETTINGS = tuple(name for name in table.RUN if name not in RUN_ONLY)
#: Per-camera settings only ``serve`` has.
SERVE_KEYS = ("record", "enabled", "ready_budget")
RECORD_KEYS = ("path", "segment", "keep", "max_size")
HTTP_KEYS = ("bind", "port", "token", "token_file")
DENOISER_KEYS = ("max_batch",)
RAY_KEYS = (
    "address", "namespace", "cameras_per_worker", "cpus_per_camera", "memory_per_camera",
    "camera_resources", "replicas", "gpus_per_replica", "cpus_per_replica",
    "memory_per_replica", "replica_resources", "max_restarts", "call_timeout",
)  # fmt: skip
TOP_KEYS = ("http", "defaults", "denoiser", "ray", "cameras")
#: The output name that means "this camera's segmented recording".
RECORD_OUTPUT = "record"
DEFAULT_RECORD_PATH = "recordings/{camera}/%Y-%m-%d/%H-%M-%S.mp4"
DEFAULT_SEGMENT_S = 60.0
DEFAULT_READY_BUDGET_S = 10.0
#: Frames per call of a shared denoiser when the file does not say: a GPU gets batches; on a
#: CPU one frame a call (round-robin) ran as fast or faster than batches of 2-8 at 360p and
#: 720p (benchmarks/results/serve_cameras_calls.md).
GPU_MAX_BATCH = 16
CPU_MAX_BATCH = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?$", re.IGNORECASE)


def parse_duration(value: Any, key: str) -> float:
    """Seconds from ``90``, ``90s``, ``5m``, ``2h``, ``7d``, ``1w``."""
    match = _DURATION.match(str(value).strip())
    if not match or float(match[1]) <= 0:
        raise UsageError(f"bad {key} {value!r}: expected a duration such as 60s, 10m, 7d")
    return float(match[1]) * _DURATION_UNITS[(match[2] or "s").lower()]


def parse_bytes(value: Any, key: str) -> int:
    """Bytes from ``500MB``, ``50GB``, ``1TiB``, ``1048576`` (KB = 1000, KiB = 1024)."""
    match = _BYTES.match(str(value).strip())
    if not match or float(match[1]) <= 0:
        raise UsageError(f"bad {key} {value!r}: expected a size such as 500MB or 50GB")
    unit = (match[2] or "B").upper()
    base = 1024 if "I" in unit else 1000
    power = "BKMGT".index(unit[0]) if unit[0] in "KMGT" else 0
    return int(float(match[1]) * base**power)


@dataclass
class RecordConfig:
    """Segmented recording of one camera."""

    #: strftime pattern; ``{camera}`` is the camera's name. The suffix picks the container.
    path: str = DEFAULT_RECORD_PATH
    segment_s: float = DEFAULT_SEGMENT_S
    #: Delete segments older than this (None: keep).
    keep_s: float | None = None
    #: Delete the oldest segments while this camera's total is above this (None: no cap).
    max_size: int | None = None


@dataclass
class CameraConfig:
    name: str
    #: Every setting of :data:`CAMERA_SETTINGS`, parsed, table defaults filled in.
    settings: dict
    record: RecordConfig | None = None
    enabled: bool = True
    ready_budget_s: float = DEFAULT_READY_BUDGET_S

    @property
    def source(self) -> str:
        return self.settings["source"]

    @property
    def outputs(self) -> list[str]:
        return self.settings["output"] or []


@dataclass
class HttpConfig:
    bind: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.bind)


@dataclass
class RayConfig:
    """``ray:``: run the cameras and the denoisers as actors of a Ray cluster (see
    :mod:`streamdenoise.serve.cluster`). Resource figures are Ray's scheduling units."""

    #: GCS address ``host:port`` of the head node, or ``auto`` (``RAY_ADDRESS``, or the
    #: cluster ``ray start`` started on this machine).
    address: str = "auto"
    namespace: str = "streamdenoise"
    #: Cameras run by one stream-worker actor (one process): fewer processes, but a worker
    #: that dies takes all of its cameras with it.
    cameras_per_worker: int = 1
    cpus_per_camera: float = 1.0
    memory_per_camera: int | None = None
    #: Custom resources each camera needs (a worker of N cameras asks N times as much), e.g.
    #: ``{camera_slot: 1}`` with ``ray start --resources='{"camera_slot": 16}'``.
    camera_resources: dict[str, float] = field(default_factory=dict)
    #: Denoiser actors per denoiser setting; cameras spread over them.
    replicas: int = 1
    #: None: 1 where the cluster has GPUs, else 0 (fractions share a GPU).
    gpus_per_replica: float | None = None
    cpus_per_replica: float = 1.0
    memory_per_replica: int | None = None
    replica_resources: dict[str, float] = field(default_factory=dict)
    #: Restarts of a worker or replica after its process or node died (-1: forever).
    max_restarts: int = -1
    #: A denoise call that takes longer counts as failed (its frames are retried once on
    #: another replica, then dropped and counted).
    call_timeout_s: float = 10.0


@dataclass
class ServeConfig:
    path: Path
    http: HttpConfig
    cameras: dict[str, CameraConfig]
    #: None: :data:`GPU_MAX_BATCH` on CUDA, :data:`CPU_MAX_BATCH` elsewhere.
    max_batch: int | None = None
    #: Set when the cameras run on a Ray cluster (``ray:`` in the file, or ``serve --ray``).
    ray: RayConfig | None = None

    def batch_for(self, device: str) -> int:
        if self.max_batch is not None:
            return self.max_batch
        return GPU_MAX_BATCH if device.startswith("cuda") else CPU_MAX_BATCH


class _Problems:
    """Collects one line per problem instead of stopping at the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(redact(f"{self.path}: {where}: {message}" if where else message))

    def check(self, where: str, parse, *args):
        try:
            return parse(*args)
        except UsageError as err:
            self.add(where, str(err))
            return None


def _mapping(value: Any, where: str, problems: _Problems) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, "must be a mapping of setting: value")
        return {}
    return {str(k).replace("-", "_"): v for k, v in value.items()}


def _unknown(data: dict, known, where: str, problems: _Problems) -> None:
    extra = sorted(set(data) - set(known))
    if extra:
        problems.add(where, f"unknown setting(s) {', '.join(extra)} (known: {', '.join(known)})")


def _record(value: Any, where: str, problems: _Problems) -> RecordConfig | None:
    if value in (None, False):
        return None
    if value is True:
        return RecordConfig()
    data = _mapping(value, where, problems)
    _unknown(data, RECORD_KEYS, where, problems)
    record = RecordConfig()
    if "path" in data:
        record.path = str(data["path"])
        if Path(record.path).suffix.lower() not in (".mp4", ".mkv", ".ts", ".mov"):
            problems.add(where, f"path {record.path!r} must end in .mp4, .mkv, .ts or .mov")
    if "segment" in data:
        record.segment_s = problems.check(where, parse_duration, data["segment"], "segment")
    if "keep" in data:
        record.keep_s = problems.check(where, parse_duration, data["keep"], "keep")
    if "max_size" in data:
        record.max_size = problems.check(where, parse_bytes, data["max_size"], "max_size")
    return record


def _camera(
    name: str, raw: Any, defaults: dict, problems: _Problems, cluster: bool
) -> CameraConfig | None:
    from streamdenoise.sinks import sink_kind

    where = f"camera {name!r}"
    if not _NAME.match(name):
        problems.add(where, "names are letters, digits, '.', '_' and '-' (at most 64)")
        return None
    data = {**defaults, **_mapping(raw, where, problems)}
    if "outputs" in data:
        data["output"] = data.pop("outputs")
    _unknown(data, sorted({*CAMERA_SETTINGS, *SERVE_KEYS}), where, problems)
    if data.get("source") is None:
        problems.add(where, "no source")
    settings, unreadable = {}, set()
    for key in CAMERA_SETTINGS:
        setting, value = table.SETTINGS[key], data.get(key)
        settings[key] = setting.default
        if value is not None:
            parsed = problems.check(where, setting.parse, value, key)
            settings[key] = setting.default if parsed is None else parsed
            if parsed is None:
                unreadable.add(key)
    settings["bind"] = table.default("bind")  # the preview's; refused as an output below
    _check_denoiser(settings, where, problems, here=not cluster)
    camera = CameraConfig(name=name, settings=settings)
    camera.enabled = bool(data.get("enabled", True))
    if "ready_budget" in data:
        budget = problems.check(where, parse_duration, data["ready_budget"], "ready_budget")
        camera.ready_budget_s = budget or DEFAULT_READY_BUDGET_S
    outputs = settings["output"] or []
    camera.record = _record(data.get("record"), f"{where} record", problems)
    if RECORD_OUTPUT in outputs and camera.record is None:
        camera.record = RecordConfig()
    if camera.record is not None and RECORD_OUTPUT not in outputs:
        outputs = settings["output"] = [*outputs, RECORD_OUTPUT]
    if not outputs and "output" not in unreadable:  # a bad list is said once, above
        problems.add(where, "no outputs (add `record` or outputs: [...])")
    for output in outputs:
        if output == RECORD_OUTPUT:
            continue
        kind = problems.check(where, sink_kind, output)
        if kind == "display":
            problems.add(where, "'display' needs a desktop session; a service has none")
        elif kind == "file" and Path(output).expanduser().exists():
            problems.add(
                where,
                f"output {output} exists and serve never overwrites a file "
                "(use `record` for segmented recordings)",
            )
        elif kind == "preview":
            problems.add(where, "use the service's dashboard instead of an http:// preview")
    return camera


def _check_denoiser(settings: dict, where: str, problems: _Problems, here: bool) -> None:
    """What would otherwise fail only when the camera starts: an unknown model, ``auto`` with
    a classical filter, and (``here``: the denoiser runs in this process, not on a cluster
    node with other hardware) a backend that cannot run on this machine."""
    from streamdenoise.backends import unavailable_reason
    from streamdenoise.models import weights_path
    from streamdenoise.runtime import choose_backend

    model = settings["model"]
    if model not in (None, "auto") and problems.check(where, weights_path, model) is None:
        return
    if not here:  # a cluster node resolves the backend and device (its own hardware)
        return
    s = settings
    chosen = problems.check(where, choose_backend, s["backend"], model, s["device"], s["precision"])
    if chosen is None:
        return
    reason = unavailable_reason(chosen[0])
    if reason:
        problems.add(where, f"backend {chosen[0]!r} is unavailable: {reason}")


def _http(raw: Any, problems: _Problems) -> HttpConfig:
    data = _mapping(raw, "http", problems)
    _unknown(data, HTTP_KEYS, "http", problems)
    http = HttpConfig()
    if "bind" in data:
        http.bind = str(data["bind"])
    if "port" in data:
        port = data["port"]
        if not isinstance(port, int) or not 0 <= port <= 65535:
            problems.add("http", f"bad port {port!r}: expected 0-65535 (0: any free port)")
        else:
            http.port = port
    token = data.get("token")
    if data.get("token_file") is not None:
        try:
            token = Path(str(data["token_file"])).expanduser().read_text().strip()
        except OSError as err:
            problems.add("http", f"cannot read token_file: {err.strerror}")
    if token is not None:
        token = str(token)
        if len(token) < MIN_TOKEN_LENGTH:
            problems.add("http", f"token must be at least {MIN_TOKEN_LENGTH} characters")
        http.token = token
    if not http.loopback and not http.token:
        problems.add(
            "http",
            f"bind {http.bind} is not loopback: set http.token (or http.token_file) so that "
            "every endpoint but /healthz asks for it",
        )
    return http


def _number(data: dict, key: str, problems: _Problems, minimum: float, whole: bool = False):
    """``data[key]`` as a number >= ``minimum`` (an int where ``whole``), or None."""
    value = data[key]
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if whole else "a number"
        problems.add("ray", f"bad {key} {value!r}: expected {kind} >= {minimum:g}")
        return None
    return value


def _resources(data: dict, key: str, problems: _Problems) -> dict[str, float]:
    raw = data[key] or {}
    if not isinstance(raw, dict):
        problems.add("ray", f"{key} must be a mapping of resource: amount")
        return {}
    resources = {}
    for name, amount in raw.items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
            problems.add("ray", f"{key}: bad amount {amount!r} of {name}: expected a number > 0")
        elif str(name) in ("CPU", "GPU", "memory"):
            problems.add("ray", f"{key}: {name} has its own setting (cpus_, gpus_, memory_per_)")
        else:
            resources[str(name)] = float(amount)
    return resources


def _ray(raw: Any, address: str | None, problems: _Problems) -> RayConfig | None:
    """``ray:`` (None when the file has none and ``address`` is None)."""
    if raw is None and address is None:
        return None
    data = _mapping(raw, "ray", problems)
    _unknown(data, RAY_KEYS, "ray", problems)
    ray = RayConfig()
    if address is not None:
        data["address"] = address
    if "address" in data:
        ray.address = str(data["address"]).strip()
        if ray.address.startswith("ray://"):
            problems.add(
                "ray",
                f"address {ray.address}: Ray Client addresses are not supported; run serve on a "
                "machine of the cluster with the head's address host:port (default port 6379)",
            )
        elif not ray.address:
            problems.add("ray", "empty address: use host:port, or auto")
    if "namespace" in data:
        ray.namespace = str(data["namespace"])
    for key, minimum, whole in (
        ("cameras_per_worker", 1, True), ("cpus_per_camera", 0, False), ("replicas", 1, True),
        ("gpus_per_replica", 0, False), ("cpus_per_replica", 0, False),
        ("max_restarts", -1, True),
    ):  # fmt: skip
        if data.get(key) not in (None, "auto"):
            value = _number(data, key, problems, minimum, whole)
            if value is not None:
                setattr(ray, key, value)
    for key in ("memory_per_camera", "memory_per_replica"):
        if data.get(key) is not None:
            setattr(ray, key, problems.check("ray", parse_bytes, data[key], key))
    for key in ("camera_resources", "replica_resources"):
        if key in data:
            setattr(ray, key, _resources(data, key, problems))
    if data.get("call_timeout") is not None:
        timeout = problems.check("ray", parse_duration, data["call_timeout"], "call_timeout")
        ray.call_timeout_s = timeout or ray.call_timeout_s
    return ray


def load(path: str | Path, ray_address: str | None = None) -> tuple[ServeConfig | None, list[str]]:
    """(config, []) when the file is usable, else (None, one line per problem).
    ``ray_address`` (``serve --ray``) runs the file on that Ray cluster."""
    import yaml

    path = Path(path)
    problems = _Problems(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as err:
        return None, [f"cannot read config {path}: {err.strerror}"]
    except yaml.YAMLError as err:
        return None, [f"config {path} is not valid YAML: {str(err).splitlines()[0]}"]
    if not isinstance(data, dict):
        return None, [f"config {path} must be a mapping with a `cameras:` section"]
    _unknown(data, TOP_KEYS, "", problems)
    http = _http(data.get("http"), problems)
    denoiser = _mapping(data.get("denoiser"), "denoiser", problems)
    _unknown(denoiser, DENOISER_KEYS, "denoiser", problems)
    max_batch = None
    if denoiser.get("max_batch") not in (None, "auto"):
        value = denoiser["max_batch"]
        if not isinstance(value, int) or value < 1:
            problems.add("denoiser", f"bad max_batch {value!r}: expected an integer >= 1")
        else:
            max_batch = value
    ray = _ray(data.get("ray"), ray_address, problems)
    defaults = _mapping(data.get("defaults"), "defaults", problems)
    raw_cameras = _mapping(data.get("cameras"), "cameras", problems)
    if not raw_cameras and not problems.lines:
        problems.add("", f"{path}: no cameras")
    cameras = {}
    for name, raw in raw_cameras.items():
        camera = _camera(name, raw, defaults, problems, cluster=ray is not None)
        if camera is not None:
            cameras[name] = camera
    if problems.lines:
        return None, problems.lines
    return ServeConfig(path=path, http=http, cameras=cameras, max_batch=max_batch, ray=ray), []


def load_or_raise(path: str | Path) -> ServeConfig:
    config, problems = load(path)
    if config is None:
        raise UsageError("; ".join(problems))
    return config
