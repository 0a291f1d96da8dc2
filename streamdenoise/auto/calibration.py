"""Calibration: how fast each tier really runs here, measured once and cached.

A calibration is a short timed run of one tier at one precision on this machine's runtime,
at the source's frame size, on frames of the built-in demo scene (real content and motion, so
a temporal tier's motion estimation does its real work). Its result is cached in the user
cache directory (``platformdirs``: ``~/.cache/streamdenoise/calibration.json`` on Linux)
under a key of everything that decides the speed:

* the machine: CPU model, its instruction-set flags that matter (AVX2, AVX-512, bf16, VNNI,
  AMX), the cores this process may use, and the GPU when the runtime runs on one;
* the runtime: backend, its package version, device and thread count;
* the tier's name and the SHA-256 of its weights file, the settings of the motion estimation
  it does on the host (if any) and whether the host or the runtime's graph moves the state
  along the dense flow, the precision and the frame size.

A key that differs in any part is a miss, so a new CPU, runtime upgrade or retrained model is
measured again; storing a result replaces the entry it supersedes (same machine, tier,
runtime, device, precision and size), so the file never grows stale entries.

The cost of decoding a frame of that size, and of encoding it with libx264 (one thread) at
each preset the run's outputs use, is measured and cached the same way: on a CPU the denoiser
shares the cores with them.

What neither covers — x264 on the camera's real content, the pipeline's own threads, the
contention between them — is learned from live runs: each rung's busy time per frame while it
streamed, kept per machine, runtime, size and outputs (:func:`pipeline_key`), which the next
start trusts over the calibrated figures for that rung.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import statistics
import time
from collections import deque
from datetime import datetime, timezone
from fractions import Fraction
from importlib import metadata
from pathlib import Path

import numpy as np

from streamdenoise.backends.base import Denoiser
from streamdenoise.settings import AUTO_PRESET_STEPS, default

log = logging.getLogger(__name__)

CACHE_FILE = "calibration.json"
CACHE_FORMAT = 1
WARMUP_FRAMES = 3
MIN_FRAMES = 5
MAX_FRAMES = 12
#: Timed frames stop after this long (once MIN_FRAMES are in).
TIME_BOX_S = 1.0
#: Frames per codec round: fewer leave out most of x264's lookahead (at 6 frames `veryfast`
#: measured cheaper than `superfast` on the Zen 3; at 24 they rank as on real video).
CODEC_FRAMES = 24
#: Noise (σ, 8-bit levels) on the clean demo frames the codec costs are measured on: about
#: the error a denoiser leaves (RMS 2 is 42 dB PSNR), so the encoder codes some grain.
RESIDUAL_NOISE = 2.0
#: The codec cost is the fastest of this many rounds (the load of the moment must not stick).
CODEC_ROUNDS = 2
#: Runtime backend -> the package whose version decides its speed.
RUNTIME_PACKAGES = {
    "torch": "torch",
    "openvino": "openvino",
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt",
}
#: Fields of a key that name *what* was measured; the rest say where and with what.
SLOT_FIELDS = ("kind", "tier", "precision", "size", "work")


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("streamdenoise"))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_key(device: str = "cpu") -> dict:
    """What identifies this machine's speed: CPU model and flags, cores, GPU when used."""
    from streamdenoise import hardware

    cpu = hardware.cpu()
    key = {"cpu": cpu.model, "flags": cpu.notable_flags, "cores": usable_cores()}
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        gpus = {gpu.index: gpu.name for gpu in hardware.cuda_devices()}
        key["gpu"] = gpus.get(index, device)
    return key


def runtime_key(denoiser: Denoiser) -> dict:
    package = RUNTIME_PACKAGES.get(denoiser.name, "torch")
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = "?"
    return {
        "runtime": denoiser.name,
        "version": f"{package} {version}",
        "device": denoiser.device,
        "threads": getattr(denoiser, "threads", None),
    }


class CalibrationCache:
    """The cache file: a list of ``{"key": {...}, "result": {...}}`` entries."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = Path(folder or cache_dir()) / CACHE_FILE

    def entries(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            log.warning("ignoring the unreadable calibration cache %s (%s)", self.path, err)
            return []
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return []
        return [e for e in data.get("entries", []) if isinstance(e, dict) and "key" in e]

    def lookup(self, key: dict) -> dict | None:
        key = _plain(key)
        return next((e["result"] for e in self.entries() if e["key"] == key), None)

    def store(self, key: dict, result: dict) -> None:
        """Add ``result`` under ``key``, replacing what it supersedes; a cache that cannot be
        written costs a re-measurement next time, nothing more."""
        key = _plain(key)
        kept = [e for e in self.entries() if not _same_slot(e["key"], key)]
        kept.append({"key": key, "result": result})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"format": CACHE_FORMAT, "entries": kept}, indent=1))
            tmp.replace(self.path)
        except OSError as err:
            log.warning("cannot write the calibration cache %s: %s", self.path, err)

    def for_machine(self, machine: dict) -> list[dict]:
        machine = _plain(machine)
        return [e for e in self.entries() if e["key"].get("machine") == machine]


def _plain(value):
    """JSON round trip: tuples become lists, so stored and fresh keys compare equal."""
    return json.loads(json.dumps(value))


def _same_slot(a: dict, b: dict) -> bool:
    where = ("runtime", "device")
    return (
        all(a.get(f) == b.get(f) for f in SLOT_FIELDS)
        and a.get("machine") == b.get("machine")
        and all(a.get("runtime", {}).get(f) == b.get("runtime", {}).get(f) for f in where)
    )


def host_motion_key(runtime: dict, tier) -> str | None:
    """What the host does for ``tier``'s motion on ``runtime``: the estimator's settings and,
    for dense flow, whether the host or the runtime's graph moves the state along it."""
    from streamdenoise.backends import backend_class
    from streamdenoise.models.motion import host_settings

    if not tier.host_motion:
        return None
    settings = host_settings(tier.config.motion)
    if tier.config.motion == "flow":
        in_graph = getattr(backend_class(runtime["runtime"]), "flow_state_in_graph", False)
        settings += f"; state moved {'in the graph' if in_graph else 'on the host'}"
    return settings


def tier_key(machine: dict, runtime: dict, tier, precision: str, size: tuple[int, int]) -> dict:
    from streamdenoise.runtime import frames_in_flight

    return {
        "kind": "tier",
        "machine": machine,
        "runtime": runtime,
        "tier": tier.name,
        "weights": tier.digest,
        "host_motion": host_motion_key(runtime, tier),
        "precision": precision,
        "size": f"{size[0]}x{size[1]}",
        "frames_in_flight": frames_in_flight(
            runtime["runtime"], runtime["device"], tier.temporal, runtime["threads"]
        ),
    }


def calibration_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """Demo frames with camera noise: what the denoiser sees."""
    from streamdenoise.sources.demo import DemoClip

    clip = DemoClip(width, height)
    return [clip.noisy(i) for i in range(count)]


def codec_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """What the encoder sees: demo frames as a denoiser leaves them, the clean scene with
    :data:`RESIDUAL_NOISE` (x264's time follows the detail it must code: the clean scene
    alone took half the time of a denoised camera clip at ``veryfast``)."""
    from streamdenoise.sources.demo import DemoClip

    clip, rng = DemoClip(width, height), np.random.default_rng(0)
    frames = []
    for index in range(count):
        grain = rng.normal(0, RESIDUAL_NOISE, (height, width, 3))
        frames.append(np.clip(clip.clean(index) + grain, 0, 255).astype(np.uint8))
    return frames


def time_denoiser(denoiser: Denoiser, frames: list[np.ndarray]) -> dict:
    """Wall time per frame of ``denoiser`` on ``frames`` after a warm-up, at the size of the
    frames, submitted as a pipeline does (up to ``frames_in_flight`` at once); the denoiser
    is prepared for that size and reset afterwards.

    The figure is the lower quartile of the timed frames: what this machine does when other
    work leaves it the cores. It is cached for later runs, so the load of the moment must not
    stick to it (on a busy 2-core box single frames took 2 to 170 ms); the load of the moment
    is what adaptation answers to while streaming."""
    height, width = frames[0].shape[:2]
    denoiser.prepare(width, height)
    window = denoiser.frames_in_flight
    pending: deque = deque()
    finished: list[float] = []  # when each frame's result was taken
    started = None
    for index, image in enumerate(frames):
        if len(pending) == window:
            pending.popleft().result()
            finished.append(time.perf_counter())
        if index == WARMUP_FRAMES:
            started = time.monotonic()
        timed = len(finished) - WARMUP_FRAMES - window
        if started is not None and timed >= MIN_FRAMES and time.monotonic() - started > TIME_BOX_S:
            break
        pending.append(denoiser.submit(image))
    for future in pending:
        future.result()
        finished.append(time.perf_counter())
    denoiser.reset()
    # a frame's share of the time: `window` frames finish per `window` completion intervals
    times = [
        (finished[i] - finished[i - window]) / window
        for i in range(WARMUP_FRAMES + window, len(finished))
    ]
    ms = statistics.quantiles(times, n=4, method="inclusive")[0] * 1000
    return {
        "ms_per_frame": round(ms, 3),
        "fps": round(1000 / ms, 2),
        "frames": len(times),
        "frames_in_flight": window,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def pipeline_key(
    machine: dict, runtime: dict, size: tuple[int, int], encoders: list[str], sources: int
) -> dict:
    """Key of the rungs' busy time per frame learned by live runs at ``size`` with these
    outputs (``encoders``: their x264 presets as configured, ``auto`` included) and
    ``sources`` sharing the denoiser; each rung's entry names the presets it ran beside."""
    outputs = ", ".join(sorted(encoders)) or "none"
    return {
        "kind": "pipeline",
        "machine": machine,
        "runtime": runtime,
        "size": f"{size[0]}x{size[1]}",
        "work": f"beside encoders [{outputs}] of {sources} source(s)",
    }


def seen_label(rung: str, encoders: list[str]) -> str:
    """A rung's name (``tier/precision``) in a :func:`pipeline_key` entry: with the x264
    presets it streamed beside."""
    return f"{rung} beside {', '.join(encoders) or 'no encoder'}"


def parse_seen_label(label: str) -> tuple[str, str, str]:
    """(tier, precision, the presets it streamed beside) of a :func:`seen_label`."""
    rung, _, beside = label.partition(" beside ")
    tier, _, precision = rung.partition("/")
    return tier, precision, beside


def codec_key(machine: dict, size: tuple[int, int], work: str) -> dict:
    """Key of one codec cost: ``work`` is "decode" or "encode PRESET"."""
    import av

    return {
        "kind": "codec",
        "machine": machine,
        "runtime": {"runtime": "libx264+h264", "version": f"av {av.__version__}"},
        "content": f"clean + noise sigma {RESIDUAL_NOISE}",
        "frames": CODEC_FRAMES,
        "size": f"{size[0]}x{size[1]}",
        "work": work,
    }


def measure_codec_ms(frames: list[np.ndarray], preset: str | None) -> float:
    """Core-milliseconds per frame of ``frames`` (:func:`codec_frames`: the encoder gets
    denoised frames, and a camera compresses its stream) to encode with libx264 at
    ``preset`` (file outputs' CRF, one thread), or, with ``preset`` None, to decode one
    thread's H.264 of them (encoded as a file output is by default): the fastest of
    :data:`CODEC_ROUNDS` rounds, for the reason :func:`time_denoiser` gives."""
    return min(_codec_round_ms(frames, preset) for _ in range(CODEC_ROUNDS))


def _codec_round_ms(frames: list[np.ndarray], preset: str | None) -> float:
    import av

    height, width = (n - n % 2 for n in frames[0].shape[:2])  # 4:2:0 wants even sizes
    buffer = io.BytesIO()
    started = time.perf_counter()
    with av.open(buffer, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {
            "preset": preset or AUTO_PRESET_STEPS[0],
            "crf": str(default("crf")),
            "threads": "1",
        }
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image[:height, :width], format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    if preset is not None:
        return (time.perf_counter() - started) * 1000 / len(frames)
    buffer.seek(0)
    started = time.perf_counter()
    with contextlib.closing(av.open(buffer, format="h264")) as container:
        container.streams.video[0].thread_count = 1
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
    return (time.perf_counter() - started) * 1000 / len(frames)


def codec_ms(
    cache: CalibrationCache,
    machine: dict,
    size: tuple[int, int],
    encoders: list[str],
    sources: int = 1,
    refresh: bool = False,
    keep: bool = True,
) -> float:
    """The CPU cost per frame of ``size`` (width, height) of decoding its source and encoding
    it once per x264 preset in ``encoders`` (one entry per encoding output; with several
    ``sources`` sharing the denoiser, every source's outputs, of which a frame pays its
    share): each part cached, else measured now (on :func:`codec_frames`, made only then)
    and cached unless not ``keep`` (a figure taken beside running streams is high)."""
    frames: list[np.ndarray] = []
    cost: dict[str | None, float] = {}
    for preset in dict.fromkeys([None, *encoders]):
        work = "decode" if preset is None else f"encode {preset}"
        key = codec_key(machine, size, work)
        found = None if refresh else cache.lookup(key)
        if found is None:
            frames = frames or codec_frames(*size, CODEC_FRAMES)
            found = {"ms_per_frame": round(measure_codec_ms(frames, preset), 3)}
            if keep:
                cache.store(key, found)
        cost[preset] = float(found["ms_per_frame"])
    return cost[None] + sum(cost[preset] for preset in encoders) / max(1, sources)
