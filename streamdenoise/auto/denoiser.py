"""``--model auto``: the strongest model tier that keeps up with the source, adapting as it runs.

:class:`AutoDenoiser` is a :class:`~streamdenoise.backends.base.Denoiser` that owns one
denoiser per *rung* — a model tier at one precision on the chosen runtime — and runs one of
them at a time:

1. **Calibrate** (:mod:`streamdenoise.auto.calibration`): time each tier of the ladder at the
   source's size, float and, where the runtime has it, int8, climbing from the cheapest tier
   and stopping after the first one that does not fit (dearer ones will not either). Cached.
2. **Build the rungs**: the (tier, precision) pairs that are the Pareto front of measured cost
   vs. quality on *this* machine. An int8 rung exists only where int8 runs faster here, and
   ranks :data:`INT8_PENALTY_DB` below its float twin unless the weights file records its own
   int8 score; where int8 is no faster (an AVX2 CPU without VNNI) it never runs.
3. **Choose** the best rung whose calibrated time fits :data:`TARGET_USAGE` of the frame
   interval, after reserving the CPU that decoding the source and encoding each output
   (at its own x264 preset) need — or, for a rung that streamed before at this size beside
   the same encoders, whose busy time per frame then fits (step 5). Outputs at
   ``--preset auto`` encode at the first of
   :data:`~streamdenoise.settings.AUTO_PRESET_STEPS`; where no rung fits beside that, the
   next, cheaper preset is tried, and so on (the cheapest when none fits): on a small CPU a
   live recording keeps its frames at the cost of a larger file, as WebRTC lowers encoder
   complexity before it gives up frame rate. The choice is made once, before the first frame
   is written (an encoder cannot change preset inside a file).
4. **Adapt** (:mod:`streamdenoise.auto.adapt`): step one rung down or up on the detector's
   word. The next denoiser is built, prepared for the frame size and warmed up on a
   background thread while the current one keeps streaming; the swap happens between two
   frames and carries the noise estimate and, where compatible, the recurrent state.
5. **Learn**: every check of the detector measures the running rung's real busy time per
   frame, which the calibration cannot know (x264 on the camera's content rather than the
   demo scene, the pipeline's own threads, the two runtimes contending for the cores: at
   720p on a 2-core Xeon, a rung calibrated to 73 % of the interval with the codec's share
   was busy 100 %). At the end each rung's median is kept per machine, runtime, size, outputs
   and x264 preset, and the next start judges that rung by it — it fits if it held, below
   the share at which adaptation steps down: the start that stepped down twice is not
   repeated, and the rung above the first choice, if it did not hold, is tried again only
   after the longest back-off.

Files under the ``lossless`` policy keep every frame, so nothing adapts: the strongest tier
runs, with no calibration.
"""

from __future__ import annotations

import functools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from streamdenoise import runtime as runtimes
from streamdenoise.auto import calibration as cal
from streamdenoise.auto.adapt import AdaptRules, Decision, OveruseDetector
from streamdenoise.backends.base import Denoiser
from streamdenoise.backends.neural import NeuralDenoiser
from streamdenoise.errors import BackendUnavailable, UsageError, UserError
from streamdenoise.models.tiers import Tier, discover_tiers, ladder
from streamdenoise.settings import AUTO_PRESET, AUTO_PRESET_STEPS

log = logging.getLogger(__name__)

#: The first choice's calibrated time must fit in this share of the frame interval: under
#: the detector's overuse threshold (85 %) so that it is not stepped down at once, and above
#: its step-up target (70 %) so that it is not promoted at once either. (A rung that streamed
#: here before is judged by its busy time then, against the overuse threshold: it held.)
TARGET_USAGE = 0.75
#: An int8 rung exists only where int8 takes at most this share of the float time.
INT8_GAIN = 0.9
#: Quality lost to int8 when the weights file does not record it: the largest loss among the
#: shipped exports, ``temporal``'s 0.37 dB (val/videos, σ = 25; the per-frame models lose
#: 0.10–0.13; benchmarks/results/quality/cpu_tier.md).
INT8_PENALTY_DB = 0.4
#: Frame rate assumed for the first choice when the source declares none (adaptation then
#: measures the real rate).
ASSUMED_FPS = 30.0
#: A rung's busy time is kept after this many checks (~1 s each) of it: the detector steps
#: down after two over budget, which is what a rung that does not fit gets.
LEARN_MIN_CHECKS = 2
#: A rung's most recent checks whose busy time a run learns for the next start (their
#: median; about an hour of streaming): a run of weeks keeps them in bounded memory, and
#: what it leaves for the next start is how the machine was lately, not weeks ago.
LEARNED_CHECKS = 3600
#: A rung's most recent checks that kept up, per source rate, that a step back up to it is
#: judged by (about two minutes of streaming): a run of weeks keeps them in bounded memory.
KEPT_UP_CHECKS = 120
#: What a run encodes each frame with when the caller does not say: one file output.
DEFAULT_ENCODER = AUTO_PRESET_STEPS[0]


@dataclass(frozen=True)
class Rung:
    tier: Tier
    precision: str

    @property
    def label(self) -> str:
        return f"{self.tier.name}/{self.precision}"


@dataclass
class PresetTrial:
    """One x264 preset tried for the outputs at ``auto``: what it leaves the rungs, and
    which of them fit beside it."""

    preset: str
    encoders: list[str]  # every encoding output's preset, this one in place of auto
    codec_ms: float  # decoding and encoding a frame
    limit_ms: float  # what a rung's calibrated time may be beside them
    before: dict[Rung, float | None]  # busy ms per frame when a rung streamed so before
    budget: dict[Rung, tuple[float, float]]  # ms per frame, the share it may take
    fitting: list[Rung]

    def headroom_fps(self, rung: Rung) -> float | None:
        """The frame rate whose budget ``rung`` fits beside these encoders (None: unmeasured)."""
        if rung not in self.budget:
            return None
        ms, share = self.budget[rung]
        return 1000 * share / ms


class AutoDenoiser(Denoiser):
    """Runs the best model tier that sustains the source's frame rate (module docstring).

    ``runtime`` is the neural backend every tier runs on; ``precision``, when given, pins the
    precision (no int8 rungs unless it is int8). ``tiers`` replaces the shipped ones (tests,
    experiments); ``cache`` the user's calibration cache.
    """

    name = "auto"

    def __init__(
        self,
        runtime: str = "torch",
        *,
        precision: str | None = None,
        device: str | None = None,
        threads: int | None = None,
        strength: float | None = None,
        engine_cache: Path | None = None,
        recalibrate: bool = False,
        still_camera: bool = False,
        tiers: list[Tier] | None = None,
        rules: AdaptRules | None = None,
        cache: cal.CalibrationCache | None = None,
    ) -> None:
        from streamdenoise.backends import backend_class

        cls = backend_class(runtime)
        if not cls.neural:
            raise UsageError(f"--model auto needs a neural backend, not {runtime!r}")
        if tiers is None:
            tiers, broken = discover_tiers()
            for name, reason in broken.items():
                log.warning("auto: leaving out model %s: %s", name, reason)
        self.still_camera = still_camera
        self.tiers = ladder(tiers, still_camera=still_camera)
        if not self.tiers:
            raise BackendUnavailable("--model auto: no trained model tiers are installed")
        self.runtime = runtime
        self._given = {
            k: v
            for k, v in {
                "device": device,
                "threads": threads,
                "strength": strength,
                "engine_cache": engine_cache,
            }.items()
            if v is not None
        }
        self._precision = precision
        #: The runtime rules' name of the backend (a registered variant of torch is "torch").
        self._runtime_name = cls.name
        self._int8 = precision is None and "int8" in runtimes.RUNTIMES[cls.name].precisions
        self.recalibrate = recalibrate
        self.rules = rules or AdaptRules()
        self.cache = cache or cal.CalibrationCache()
        #: Set by the pipeline before prepare(): the source's nominal rate (None: unknown) and
        #: whether frames may be dropped (the ``latest`` policy), i.e. whether to adapt. Until
        #: then (e.g. frame by frame from the Python API) the strongest tier runs.
        self.fps: float | None = None
        self.adaptive = False
        self.encoders: list[str] = [DEFAULT_ENCODER]
        #: The preset chosen for the outputs at ``--preset auto`` (None: none of them, or not
        #: chosen yet); they read it before their first frame.
        self.encoder_preset: str | None = None
        #: Each later choice of it (``serve``, as cameras come and go).
        self.preset_choices: list[dict] = []
        self.sources = 1
        self.codec_here = True
        self.rungs: list[Rung] = []
        self.cost_ms: dict[Rung, float] = {}
        self.calibration: dict = {}
        self.rung: Rung | None = None
        self.active: NeuralDenoiser | None = None
        self.switches: list[dict] = []
        self.spans: list[dict] = []
        self._pool: dict[Rung, NeuralDenoiser] = {}
        self._size: tuple[int, int] | None = None
        self._detector: OveruseDetector | None = None
        self._lock = threading.Lock()
        self._builders: list[threading.Thread] = []
        self._building: set[Rung] = set()
        self._pending: tuple[Rung, Decision] | None = None
        self._ready: NeuralDenoiser | None = None
        self._failed: tuple[Rung, str] | None = None
        self._measured_now: set[str] = set()
        #: Calibrated ms per frame of each rung measured at the start, and what they were
        #: measured on (a later preset choice judges by them).
        self._measured: dict[Rung, float] = {}
        self._machine: dict = {}
        self._runtime_key: dict = {}
        self._codec_free = False
        self._int8_ok: set[Tier] = set()
        self._cannot_run: set[Rung] = set()
        self._last_image: np.ndarray | None = None
        self._t0: float | None = None
        self._last_t = 0.0
        self._frames = 0
        #: Where what the run learns is kept (None: it learns nothing), the encoders it
        #: streams beside, and each check's busy ms per frame under its rung's label.
        self._pipeline_key: dict | None = None
        self._beside: list[str] = []
        self._busy_ms: dict[str, deque[float]] = {}
        self._weights: dict[str, str] = {}  # label -> the SHA-256 of the weights that ran
        #: Busy seconds per frame of each check a rung kept up in, per source rate, and the
        #: rate each rung was last left at for a cheaper one: a step back up to a rung left at
        #: another rate (serve's cameras came, then left again) is judged by what it took
        #: here before; one left at this very rate fell behind with the load that is here now.
        self._kept_up: dict[tuple[Rung, float | None], deque[float]] = {}
        self._left_at: dict[Rung, float | None] = {}
        self._checks_seen = 0

    # -- Denoiser ------------------------------------------------------------------------------
    @property
    def precision(self) -> str:  # type: ignore[override]
        """The running tier's; before the first frame, the float precision tiers start in."""
        if self.active:
            return self.active.precision
        return self._precision or runtimes.default_precision(self._runtime_name, self.device)

    @property
    def device(self) -> str:  # type: ignore[override]
        if self.active:
            return self.active.device
        device = self._given.get("device")
        if device is None:
            return runtimes.default_device(self._runtime_name, self._precision)
        return device

    def configure(
        self,
        fps: float | None,
        adaptive: bool,
        encoders: Sequence[str] = (DEFAULT_ENCODER,),
        sources: int = 1,
        codec_here: bool = True,
    ) -> None:
        """The source's frame rate, whether this run may drop frames, and the libx264 preset
        of each output that encodes every frame (their CPU is left to them; default: one file
        output at the default preset; ``auto`` for outputs whose preset this chooses, see
        :attr:`encoder_preset`). Several ``sources`` sharing this denoiser (``serve``'s
        cameras): ``fps`` is their sum and ``encoders`` all of theirs, so a frame reserves
        its decoding and its share of them. ``codec_here`` False: the frames are decoded and
        encoded elsewhere (a cluster's stream workers, with CPUs of their own), so nothing
        is set aside for that. Call before prepare."""
        self.fps = fps if fps and fps > 0 else None
        self.adaptive = adaptive
        self.encoders = list(encoders)
        self.sources = max(1, sources)
        self.codec_here = codec_here

    def prepare(self, width: int, height: int) -> None:
        if self._size == (width, height):
            return
        self._size = (width, height)
        if self.active is None:
            self._start(width, height)
        else:  # the stream changed size: same rung, prepared again; the detector starts over
            self._keep_learned()  # what was learned belongs to the size before; no more
            self.active.prepare(width, height)
            if self._detector is not None:
                self._detector.switched(time.monotonic(), 0)

    @property
    def frames_in_flight(self) -> int:  # type: ignore[override]
        """The active rung's; 1 while a switch waits, so the pipeline drains before it."""
        if self.active is None or self._ready is not None:
            return 1
        return self.active.frames_in_flight

    def process(self, image: np.ndarray) -> np.ndarray:
        return self.submit(image).result()

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._swap_if_ready(now)  # rungs switched away from stay open: their frames finish
        future = self.active.submit(image)
        future.add_done_callback(self._frame_finished)
        self._last_image = image
        self._frames += 1
        self.spans[-1]["frames"] += 1
        return future

    def _frame_finished(self, _: Future) -> None:
        self._last_t = time.monotonic()

    def reset(self) -> None:
        if self.active is not None:
            self.active.reset()

    def describe(self) -> dict:
        info = (
            self.active.describe()
            if self.active
            else {
                "backend": self.runtime,
                "precision": self.precision,
                "device": self.device,
            }
        )
        model = self.rung.tier.name if self.rung else "auto"
        return {**info, "model": model, "auto": True, "still_camera": self.still_camera}

    def close(self) -> None:
        for builder in self._builders:
            builder.join(timeout=30)
        self._keep_learned()
        for denoiser in self._pool.values():
            denoiser.close()
        self._pool.clear()

    # -- what the pipeline reports ---------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.rung.label if self.rung else "auto"

    def report(self) -> dict:
        """The ``auto`` section of the stats: the rungs, the calibration, spans and switches."""
        spans = [dict(s) for s in self.spans]
        if spans and self._t0 is not None:
            spans[-1]["to_s"] = round(self._last_t - self._t0, 2)  # the last frame's end
        return {
            "adaptive": self.adaptive,
            "still_camera": self.still_camera,
            "rungs": [self._describe_rung(r) for r in self.rungs],
            "calibration": self.calibration,
            "rules": asdict(self.rules) if self.adaptive else None,
            "spans": spans,
            "switches": list(self.switches),
            "busy_ms_learned": self._learned(),
            "x264_preset_choices": list(self.preset_choices) or None,
        }

    def _keep_learned(self) -> None:
        """Store this run's busy times in the cache, over the rungs' earlier ones; learning
        stops (a size change: the start was chosen for the size before)."""
        learned = self._learned()
        if learned and self._pipeline_key is not None:
            kept = (self.cache.lookup(self._pipeline_key) or {}).get("rungs", {})
            self.cache.store(self._pipeline_key, {"rungs": {**kept, **learned}})
        self._pipeline_key = None

    def _learned(self) -> dict[str, dict]:
        """Each rung's median busy ms per frame in this run (its last
        :data:`LEARNED_CHECKS` checks), under its
        :func:`~streamdenoise.auto.calibration.seen_label` (rungs
        with too few checks left out)."""
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return {
            label: {
                "busy_ms": round(statistics.median(ms), 2),
                "checks": len(ms),
                "weights": self._weights[label],
                "at": now,
            }
            for label, ms in self._busy_ms.items()
            if len(ms) >= LEARN_MIN_CHECKS
        }

    def _seen_busy(self, seen: dict, rung: Rung, encoders: list[str]) -> float | None:
        """The busy ms per frame an earlier run measured of ``rung`` beside ``encoders``
        (None: it never streamed so, or other weights of that name did)."""
        entry = seen.get(cal.seen_label(rung.label, encoders))
        if entry is None or entry.get("weights") != rung.tier.digest:
            return None
        return float(entry["busy_ms"])

    def _describe_rung(self, rung: Rung) -> dict:
        info = {**rung.tier.describe(), "precision": rung.precision}
        info["quality_rank"] = self.rungs.index(rung) + 1
        cost = self.cost_ms.get(rung)
        info["ms_per_frame"] = None if cost is None else round(cost, 2)
        return info

    # -- the pipeline's per-frame report -----------------------------------------------------------
    def frame_done(self, now: float, busy_s: float, denoise_s: float, drops: int) -> None:
        """After each frame, from a pipeline's denoise worker: feeds the detector, acts on its
        word, and keeps each check's busy time under the rung that ran (step 5)."""
        rung = self.rung
        self._judge(now, busy_s, denoise_s, drops)
        detector = self._detector
        if detector is None or detector.checks == self._checks_seen or rung is None:
            return
        if self._pipeline_key is None:  # not learning (after a size change, or stored)
            return
        self._checks_seen = detector.checks
        label = cal.seen_label(rung.label, self._beside)
        learned = self._busy_ms.setdefault(label, deque(maxlen=LEARNED_CHECKS))
        learned.append(detector.last_busy_s * 1000)
        self._weights[label] = rung.tier.digest

    def _judge(self, now: float, busy_s: float, denoise_s: float, drops: int) -> None:
        if self._detector is None:
            return
        checks = self._detector.checks
        decision = self._detector.frame(now, busy_s, denoise_s, drops)
        if self._detector.checks != checks and self._detector.fitted:
            kept = self._kept_up.setdefault((self.rung, self.fps), deque(maxlen=KEPT_UP_CHECKS))
            kept.append(self._detector.last_busy_s)
        if decision is None or self._pending is not None:
            return
        index = self.rungs.index(self.rung) + decision.step
        if 0 <= index < len(self.rungs):
            self._request(self.rungs[index], decision)

    # -- start: calibrate and choose -----------------------------------------------------------
    def _start(self, width: int, height: int) -> None:
        started = time.monotonic()
        if not self.adaptive:
            top = self._create(self.tiers[-1], self._precision)
            rung = Rung(self.tiers[-1], top.precision)
            self._pool[rung] = top
            self.rungs = [rung]
            self.calibration = {"skipped": "every frame is kept: the strongest tier runs"}
            self._activate(rung, width, height)
            return
        base = self._create(self.tiers[0], self._precision)
        float_precision = base.precision
        self._pool[Rung(self.tiers[0], float_precision)] = base
        machine = cal.machine_key(base.device)
        runtime = cal.runtime_key(base)
        # made once, and only if a tier is measured now (at 1080p they take about a second)
        frames = functools.cache(
            lambda: cal.calibration_frames(width, height, cal.WARMUP_FRAMES + cal.MAX_FRAMES)
        )
        interval = 1000 / (self.fps or ASSUMED_FPS)
        self._machine, self._runtime_key = machine, runtime
        self._codec_free = base.device.startswith("cuda") or not self.codec_here
        choosing = AUTO_PRESET in self.encoders and not self._codec_free
        self._pipeline_key = cal.pipeline_key(
            machine, runtime, (width, height), self.encoders, self.sources
        )
        if not self._codec_free:  # each part measured now, before the stream: later choices
            # (serve's, as cameras come and go) read them instead of timing x264 beside it
            steps = AUTO_PRESET_STEPS if choosing else AUTO_PRESET_STEPS[:1]
            every = [p if e == AUTO_PRESET else e for p in steps for e in self.encoders]
            cal.codec_ms(self.cache, machine, (width, height), every, 1, self.recalibrate)
        measured = self._measured

        def calibrate(limit: float) -> list[Rung]:
            self._calibrate(machine, runtime, float_precision, frames, limit, measured)
            self.rungs = self._pareto(float_precision, measured)
            return self.rungs

        trial, steps = self._try_presets(self.encoders, self.sources, interval, calibrate)
        encoders, codec, limit = trial.encoders, trial.codec_ms, trial.limit_ms
        before, fitting = trial.before, trial.fitting
        self._beside = encoders
        if AUTO_PRESET in self.encoders:
            self.encoder_preset = trial.preset
        chosen = fitting[-1] if fitting else self.rungs[0]
        fits_fps = trial.headroom_fps(chosen)  # what a camera may be set to
        self.calibration = {
            "size": f"{width}x{height}",
            "frame_interval_ms": round(interval, 2),
            "fps_assumed": self.fps is None,
            "codec_ms_per_frame": round(codec, 2),
            "busy_ms_seen_before": {r.label: ms for r, ms in before.items() if ms is not None}
            or None,
            "x264_encoders": encoders,
            "x264_preset_steps": steps if choosing else None,
            "sources": self.sources,
            "choice_limit_ms": round(limit, 2),
            "measured_now": sorted(self._measured_now),
            "seconds": round(time.monotonic() - started, 2),
            "cache": str(self.cache.path),
            "fits": bool(fitting),
            "fits_fps": None if fits_fps is None else round(fits_fps, 1),
        }
        if choosing and trial.preset != AUTO_PRESET_STEPS[0]:
            log.warning(
                "auto: recording at x264 preset %s: beside %s no model tier keeps %.3g fps at "
                "%dx%d here (the file is larger at the same quality; --preset NAME chooses)",
                trial.preset,
                AUTO_PRESET_STEPS[0],
                1000 / interval,
                width,
                height,
            )
        if not fitting:
            rate = f", with headroom at about {fits_fps:.3g} fps" if fits_fps else ""
            log.warning(
                "auto: no model tier keeps %.3g fps at %dx%d here with headroom (calibrated "
                "within %d%% of the frame interval, or busy under %d%% of it when it streamed "
                "here before); running the cheapest (%s%s): the frames it cannot take are "
                "dropped and counted (a source at that rate or a smaller size keeps every frame)",
                1000 / interval,
                width,
                height,
                round(100 * TARGET_USAGE),
                round(100 * self.rules.overuse),
                chosen.label,
                rate,
            )
        self._activate(chosen, width, height)
        self._detector = OveruseDetector(self.rules, 1 / self.fps if self.fps else None)
        self._update_detector()
        above = self.rungs.index(chosen) + 1
        seen_above = before.get(self.rungs[above]) if above < len(self.rungs) else None
        if seen_above is not None and seen_above >= interval * self.rules.overuse:
            # it did not hold here: tried again after the longest back-off
            self._detector.up_delay_s = self.rules.up_delay_max_s
        self.calibration["first_step_up_after_s"] = self._detector.up_delay_s
        below = self.rungs.index(chosen) - 1
        if below >= 0 and self.rungs[below] not in self._pool:
            self._build_async(self.rungs[below])  # a step down is needed fast, if at all

    def _try_presets(
        self,
        encoders: list[str],
        sources: int,
        interval: float,
        calibrate: Callable[[float], list[Rung]],
        streaming: bool = False,
    ) -> tuple[PresetTrial, list[dict]]:
        """The outputs at ``auto`` in ``encoders`` take each of ``AUTO_PRESET_STEPS`` in turn
        until a rung fits beside them (the cheapest when none does); the others keep their
        own. ``calibrate(limit)``: the rungs, after measuring those worth measuring under
        ``limit`` ms. ``streaming``: a codec cost missing from the cache is measured beside
        the streams, so it is used once and not kept. Returns the last trial and a record
        of each step."""
        key = cal.pipeline_key(self._machine, self._runtime_key, self._size, encoders, sources)
        learned = None if self.recalibrate else self.cache.lookup(key)
        seen = (learned or {}).get("rungs", {})
        choosing = AUTO_PRESET in encoders and not self._codec_free
        steps: list[dict] = []
        for preset in AUTO_PRESET_STEPS if choosing else AUTO_PRESET_STEPS[:1]:
            beside = [preset if e == AUTO_PRESET else e for e in encoders]
            codec = 0.0
            if not self._codec_free:
                codec = cal.codec_ms(
                    self.cache, self._machine, self._size, beside, sources, keep=not streaming
                )
            reserve = codec / cal.usable_cores()
            limit = interval * TARGET_USAGE - reserve
            rungs = calibrate(limit)
            before = {r: self._seen_busy(seen, r, beside) for r in rungs}
            # busy ms per frame and the share of the interval it may take: as calibrated,
            # within the first choice's margin; as streamed before, below the share at which
            # adaptation steps down (it held there)
            budget = {
                r: (self._measured[r] + reserve, TARGET_USAGE)
                if before[r] is None
                else (before[r], self.rules.overuse)
                for r in rungs
                if r in self._measured
            }
            fitting = [r for r, (ms, share) in budget.items() if ms < interval * share]
            trial = PresetTrial(preset, beside, codec, limit, before, budget, fitting)
            steps.append({"preset": preset, "codec_ms_per_frame": round(codec, 2),
                          "fits": bool(fitting)})  # fmt: skip
            if fitting:
                break  # else the next, cheaper preset leaves the tiers more of the CPU
        return trial, steps

    def choose_preset_again(
        self, fps: float | None, encoders: Sequence[str], sources: int
    ) -> str | None:
        """``serve``: the cameras sharing this denoiser changed — their summed ``fps``, their
        outputs' ``encoders``, how many ``sources``. Chooses the x264 preset that outputs at
        ``auto`` take from now on (a segmented recording at its next segment) as the start
        did, on the tiers and x264 presets measured then (the cost of a preset the start did
        not measure, another output's, is measured for this choice and not kept: call this
        off the streams' threads). Returns the choice (None: no output at ``auto``, or none
        encodes here)."""
        encoders, sources = list(encoders), max(1, sources)
        if self._size is None or AUTO_PRESET not in encoders or self._codec_free:
            return None
        rungs = list(self.rungs)
        interval = 1000 / (fps if fps and fps > 0 else ASSUMED_FPS)
        trial, steps = self._try_presets(
            encoders, sources, interval, lambda _: rungs, streaming=True
        )
        previous, self.encoder_preset = self.encoder_preset, trial.preset
        headroom = trial.headroom_fps(rungs[0]) if rungs else None
        headroom = None if headroom is None else round(headroom, 1)
        self.preset_choices.append(
            {
                "t_s": None if self._t0 is None else round(time.monotonic() - self._t0, 2),
                "sources": sources,
                "fps": fps,
                "x264_encoders": trial.encoders,
                "preset": trial.preset,
                "steps": steps,
                "fits": bool(trial.fitting),
                "cheapest_fits_fps": headroom,
            }
        )
        cameras = f"{sources} camera" if sources == 1 else f"{sources} cameras"
        if trial.preset != previous:
            log.warning(
                "auto: outputs at preset auto encode at x264 %s from their next file (%s, "
                "%.3g fps together, at %dx%d)",
                trial.preset,
                cameras,
                1000 / interval,
                *self._size,
            )
        if not trial.fitting and headroom is not None:
            log.warning(
                "auto: %s at %.3g fps together at %dx%d are more than this machine keeps with "
                "headroom, even with their outputs at x264 %s: the cheapest tier (%s) has it "
                "for about %g fps; the frames it cannot take are dropped and counted",
                cameras,
                1000 / interval,
                *self._size,
                trial.preset,
                rungs[0].label,
                headroom,
            )
        return trial.preset

    def _calibrate(
        self,
        machine: dict,
        runtime: dict,
        float_precision: str,
        frames: Callable[[], list[np.ndarray]],
        limit: float,
        measured: dict[Rung, float],
    ) -> None:
        """Adds to ``measured`` the ms per frame of each rung worth measuring under
        ``limit`` that it lacks, cheapest tier first. A tier is left unmeasured once one over
        the limit surely does less work: no more GMAC, and per frame or with its motion
        handled the same way. A recurrent tier's motion work is not in proportion to its
        GMAC, so an in-graph search over the limit says nothing of a flow-aligned tier ranked
        above it (on a CPU ``temporal-gpu``'s search costs more than ``wide-temporal``'s
        host flow)."""
        too_dear: list[Tier] = []
        for tier in self.tiers:
            if any(
                t.gmac_720p <= tier.gmac_720p
                and (not t.temporal or t.host_motion == tier.host_motion)
                for t in too_dear
            ):
                continue
            precisions = [float_precision] + (["int8"] if self._int8 else [])
            for precision in precisions:
                rung = Rung(tier, precision)
                if rung in measured or rung in self._cannot_run:
                    continue
                ms = self._measure(rung, machine, runtime, frames)
                if ms is None:
                    self._cannot_run.add(rung)
                else:
                    measured[rung] = ms
            float_ms = measured.get(Rung(tier, float_precision))
            int8_ms = measured.get(Rung(tier, "int8"))
            if float_ms is not None and int8_ms is not None and int8_ms <= float_ms * INT8_GAIN:
                self._int8_ok.add(tier)
            costs = [ms for r, ms in measured.items() if r.tier == tier]
            if costs and min(costs) > limit:
                too_dear.append(tier)  # tiers of more work will not fit either

    def _measure(
        self, rung: Rung, machine: dict, runtime: dict, frames: Callable[[], list[np.ndarray]]
    ) -> float | None:
        width, height = self._size
        key = cal.tier_key(machine, runtime, rung.tier, rung.precision, (width, height))
        found = None if self.recalibrate else self.cache.lookup(key)
        if found is not None:
            return float(found["ms_per_frame"])
        if not self._measured_now:
            log.warning(
                "auto: measuring the model tiers at %dx%d on this machine (once; cached in %s)",
                width,
                height,
                self.cache.path,
            )
        denoiser = self._pool.get(rung)
        if denoiser is None:
            try:
                denoiser = self._create(rung.tier, rung.precision)
            except UserError as err:
                if rung.precision != "int8":
                    log.warning("auto: cannot run %s: %s", rung.label, err)
                return None  # e.g. no int8 export of this tier: no int8 rung
            self._pool[rung] = denoiser
        result = cal.time_denoiser(denoiser, frames())
        self.cache.store(key, result)
        self._measured_now.add(rung.label)
        return result["ms_per_frame"]

    def _pareto(self, float_precision: str, measured: dict[Rung, float]) -> list[Rung]:
        """Rungs in quality order, keeping only those cheaper than every better one.

        Tiers above the last one measured get a float rung whose cost is extrapolated by
        GMAC from the dearest measured float rung, never below it (a tier ranked dearer with
        fewer GMAC measures motion on the host); adaptation may still climb there.
        """
        candidates: list[tuple[float, Rung]] = []
        ranked = all(t.quality is not None for t in self.tiers)
        last: tuple[Tier, float] | None = None
        for index, tier in enumerate(self.tiers):
            quality = tier.quality if ranked else float(index)
            rung = Rung(tier, float_precision)
            if rung in measured:
                last = (tier, measured[rung])
                self.cost_ms[rung] = measured[rung]
            elif last is not None:
                self.cost_ms[rung] = last[1] * max(1.0, tier.gmac_720p / last[0].gmac_720p)
            else:
                continue  # the tier cannot run here
            candidates.append((quality, rung))
            if tier in self._int8_ok:
                int8 = Rung(tier, "int8")
                self.cost_ms[int8] = measured[int8]
                candidates.append((quality - self._int8_penalty(tier, ranked), int8))
        if not candidates:
            raise BackendUnavailable(f"--model auto: no model tier runs on {self.runtime!r} here")
        kept: list[Rung] = []
        for _quality, rung in sorted(candidates, key=lambda c: c[0], reverse=True):
            if not kept or self.cost_ms[rung] < self.cost_ms[kept[-1]]:
                kept.append(rung)
        return kept[::-1]

    @staticmethod
    def _int8_penalty(tier: Tier, ranked: bool) -> float:
        if not ranked:
            return 0.5  # just below its float twin, above the tier beneath
        if tier.quality_int8 is None:
            return INT8_PENALTY_DB
        return tier.quality - tier.quality_int8

    def _create(self, tier: Tier, precision: str | None) -> NeuralDenoiser:
        from streamdenoise.backends import create_backend

        settings = {**self._given, "model": tier.model_arg}
        if precision is not None:
            settings["precision"] = precision
        return create_backend(self.runtime, **settings)

    def _activate(self, rung: Rung, width: int, height: int) -> None:
        denoiser = self._pool.get(rung) or self._create(rung.tier, rung.precision)
        self._pool[rung] = denoiser
        denoiser.prepare(width, height)
        denoiser.reset()
        self.active, self.rung = denoiser, rung
        self.spans.append(
            {"model": rung.tier.name, "precision": rung.precision, "from_s": 0.0, "frames": 0}
        )

    def _update_detector(self) -> None:
        index = self.rungs.index(self.rung)
        self._detector.can_go_down = index > 0
        above = self.rungs[index + 1] if index + 1 < len(self.rungs) else None
        self._detector.up_ratio = (
            None if above is None else self.cost_ms[above] / self.cost_ms[self.rung]
        )
        self._detector.up_busy_s = None if above is None else self._busy_seen(above)

    def _busy_seen(self, rung: Rung) -> float | None:
        """Busy seconds per frame ``rung`` may be expected to take at this rate, from a rung of
        its tier (itself first) that kept up at this rate before and was left at another:
        that one's busy time scaled by their calibrated costs. None without such a rung."""
        for seen in sorted((r for r in self.rungs if r.tier == rung.tier), key=lambda r: r != rung):
            kept = self._kept_up.get((seen, self.fps), ())
            if len(kept) >= LEARN_MIN_CHECKS and self._left_at.get(seen) != self.fps:
                return statistics.median(kept) * self.cost_ms[rung] / self.cost_ms[seen]
        return None

    # -- switching -------------------------------------------------------------------------------
    def _request(self, rung: Rung, decision: Decision) -> None:
        with self._lock:  # with the builder's last step: it sees this request, or is done
            self._pending = (rung, decision)
            if rung in self._building:
                return  # already on its way (the step down is built ahead); ready when done
        self._build_async(rung)

    def _build_async(self, rung: Rung) -> None:
        """Build (or reuse), prepare and warm up ``rung``'s denoiser off the stream's thread."""
        last = None if self._last_image is None else self._last_image.copy()
        with self._lock:
            self._building.add(rung)
        builder = threading.Thread(
            target=self._build, args=(rung, self._size, last), name="auto build", daemon=True
        )
        self._builders = [b for b in self._builders if b.is_alive()] + [builder]
        builder.start()

    def _build(self, rung: Rung, size: tuple[int, int], last: np.ndarray | None) -> None:
        try:
            with self._lock:
                denoiser = self._pool.get(rung)
            fresh = denoiser is None
            if fresh:
                denoiser = self._create(rung.tier, rung.precision)
            denoiser.prepare(*size)
            if fresh and last is not None:  # first-frame costs (allocations, kernels) now,
                denoiser.submit(last).result()  # on the path the pipeline will take
            denoiser.reset()
        except Exception as err:  # a rung that cannot run is left out; streaming goes on
            with self._lock:
                self._failed = (rung, f"{type(err).__name__}: {err}")
                self._building.discard(rung)
            return
        with self._lock:  # one step: a request made meanwhile is seen, or builds anew
            self._pool[rung] = denoiser
            self._building.discard(rung)
            if self._pending and self._pending[0] == rung:
                self._ready = denoiser

    # -- shared by many streams (serve) ----------------------------------------------------------
    def set_rate(self, fps: float) -> None:
        """The source's (or the sources') frame rate changed: judge by the new interval."""
        self.fps = fps
        if self._detector is not None:
            self._detector.interval_s = 1 / fps
            self._update_detector()  # what the tier above took at this rate, if it ran so

    def shared_switch(self, now: float) -> bool:
        """Between two calls of a denoiser that many streams share (``serve``): switch to the
        rung built meanwhile, if one is ready. The streams' states follow by themselves: each
        starts afresh on the new tier, its noise level kept (``StreamState.owner``). True
        when the active rung changed."""
        before = self.active
        self._swap_if_ready(now, carry=False)
        return self.active is not before

    def shared_frames_done(
        self, now: float, images: Sequence[np.ndarray], busy_s: float, drops: int
    ) -> None:
        """After one call of a shared denoiser: ``images`` took ``busy_s`` of the worker's time
        and the streams' queues have dropped ``drops`` frames so far. Fed to the detector as
        :meth:`frame_done` is, a sample per frame."""
        if self._t0 is None:
            self._t0 = now - busy_s
        self._last_image = images[-1]  # what a rung built from now on warms up on
        self._frames += len(images)
        self.spans[-1]["frames"] += len(images)
        self._last_t = now
        for _ in images:  # the worker's time is the batch's alone: nothing to learn from it
            self._judge(now, busy_s / len(images), busy_s / len(images), drops)

    def _swap_if_ready(self, now: float, carry: bool = True) -> None:
        with self._lock:
            ready, self._ready = self._ready, None
            failed, self._failed = self._failed, None
        if failed:
            broken, reason = failed
            log.warning("auto: leaving out %s: %s", broken.label, reason)
            if broken in self.rungs and broken != self.rung:
                self.rungs.remove(broken)
            if self._pending and self._pending[0] == broken:
                self._pending = None
            self._update_detector()
        if ready is None:
            return
        rung, decision = self._pending
        previous = self.rung
        carried = carry and ready.carry_state(self.active, self._last_image)
        t = round(now - self._t0, 2)
        self.spans[-1]["to_s"] = t
        self.spans.append(
            {"model": rung.tier.name, "precision": rung.precision, "from_s": t, "frames": 0}
        )
        self.switches.append(
            {
                "t_s": t,
                "frame": self._frames,
                "from": previous.label,
                "to": rung.label,
                "direction": "down" if decision.step < 0 else "up",
                "reason": decision.reason,
                "state": "carried" if carried else "reset",
            }
        )
        log.warning("auto: %s -> %s (%s)", previous.label, rung.label, decision.reason)
        if decision.step < 0:
            self._left_at[previous] = self.fps
        self.active, self.rung, self._pending = ready, rung, None
        self._detector.switched(now, decision.step)
        self._update_detector()
