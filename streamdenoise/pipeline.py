"""The streaming pipeline: capture thread → FrameQueue → denoise worker → fan-out → sinks.

Threads and who ends them:

* **capture** runs ``source.frames()`` and puts frames into the source queue (policy
  ``lossless`` blocks, ``latest`` drops the oldest). At EOF, on a source error or on stop it
  puts one :class:`EndOfStream` (carrying the error, if any) and closes the source.
* **denoise** (one worker) takes frames in order, prepares/resets the backend on the first
  frame, a size change or a discontinuity, runs it and hands the frame to every sink queue.
  A backend that overlaps frames (``frames_in_flight`` > 1) gets the next frame while the
  previous one is still running; frames still reach the sinks in order. It ends on
  EndOfStream, on stop or at ``max_frames`` (the frames in flight finish first) and then
  sends EndOfStream to every sink.
* **one thread per sink**, each with its own small queue (lossless sinks make the fan-out
  wait; the others drop their oldest frame, so a slow display never stalls a file). A sink
  opens on its first frame and is closed exactly once, on every path, so files are playable.
  A sink that raises is reported and retired; the others keep going.

:meth:`Pipeline.stop` (Ctrl+C, SIGTERM, ``--duration``, 'q' in the window) ends the stream the
same way EOF does; a second stop abandons the frames still queued for the sinks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamdenoise import interrupts
from streamdenoise.backends.base import Denoiser
from streamdenoise.errors import SourceError, UserError
from streamdenoise.frame import EndOfStream, Frame
from streamdenoise.frame_queue import FrameQueue, Policy, QueueClosed
from streamdenoise.metrics import Metrics
from streamdenoise.options import SinkOptions, SourceOptions
from streamdenoise.redact import redact
from streamdenoise.runtime import create_denoiser
from streamdenoise.settings import default, default_output
from streamdenoise.sinks import Output, open_sink, output_name
from streamdenoise.sinks.base import Sink
from streamdenoise.sources import open_source
from streamdenoise.sources.base import Source, SourceState

if TYPE_CHECKING:  # torch comes with it: imported only when a run asks for model "auto"
    from streamdenoise.auto import AutoDenoiser

log = logging.getLogger(__name__)

#: Per-sink queue depths: files may fall a little behind; live outputs keep only fresh frames.
LOSSLESS_SINK_QUEUE = 2
LIVE_SINK_QUEUE = 2
POLL_S = 0.1  # how often blocked stages look at the stop flags


@dataclass
class PipelineConfig:
    """Everything a run needs; the CLI, the YAML config and the Python API all fill this.

    Defaults are those of ``streamdenoise run`` (:mod:`streamdenoise.settings`); None means
    "decided at run time", as the CLI decides it.
    """

    source: str
    #: Output strings as ``run -o`` takes them, Sink objects or callables taking each
    #: :class:`~streamdenoise.frame.Frame`. None: ``<source name>_denoised.mp4``, as ``run``.
    outputs: list[Output] | None = None
    #: A backend name, or ``auto``: the trained model on the fastest runtime here.
    backend: str = default("backend")
    model: str | None = None
    precision: str | None = None
    #: cpu, cuda, cuda:N or auto (CUDA when a GPU is usable, see :mod:`streamdenoise.runtime`).
    device: str | None = default("device")
    #: CPU threads for the denoiser (None: the runtime's choice).
    threads: int | None = None
    strength: float | None = None
    #: None = from the source: ``latest`` for live inputs, ``lossless`` for files and demo.
    policy: Policy | None = None
    queue_size: int = default("queue_size")
    max_frames: int | None = None
    duration: float | None = None
    stats_json: Path | None = None
    #: Folder for built TensorRT plans (None: the user cache, see :mod:`streamdenoise.artifacts`).
    engine_cache: Path | None = None
    source_options: SourceOptions = field(default_factory=SourceOptions)
    sink_options: SinkOptions = field(default_factory=SinkOptions)
    #: Live status line on stderr (shown only when stderr is a terminal).
    status: bool = not default("quiet")
    #: ``model="auto"``: measure the tiers again instead of trusting the calibration cache.
    recalibrate: bool = default("recalibrate")
    still_camera: bool = default("still_camera")
    #: Run the recurrent model backward too and average (frames leave a few frames late).
    two_pass: bool = default("two_pass")

    def __post_init__(self) -> None:
        if self.outputs is None:
            self.outputs = [default_output(self.source)]


@dataclass
class Report:
    """What happened: the stats document plus how the run ended."""

    stats: dict
    #: One redacted line when the source died or a stage failed; None on a clean end.
    error: str | None = None
    #: True when stopped by a signal (Ctrl+C / SIGTERM).
    interrupted: bool = False
    #: True when ``error`` was already logged as it happened (a failed output): the CLI does
    #: not print it a second time.
    error_logged: bool = False

    @property
    def exit_code(self) -> int:
        if self.error:
            return 1
        return interrupts.EXIT_STATUS if self.interrupted else 0


class SinkRunner:
    """One sink, its queue and its thread."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        metrics: Metrics,
        fps_hint: Callable[[], float | None],
        chosen_preset: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.name = name
        self.sink = sink
        self.metrics = metrics
        self.counters = metrics.add_sink(name)
        self._fps_hint = fps_hint
        #: The x264 preset ``--model auto`` chose for outputs at ``--preset auto`` (None:
        #: none chosen); the sink asks when its first frame arrives, after the choice (a
        #: segmented recording at each segment).
        self._chosen_preset = chosen_preset
        policy: Policy = "lossless" if sink.lossless else "latest"
        size = LOSSLESS_SINK_QUEUE if sink.lossless else LIVE_SINK_QUEUE
        self.queue = FrameQueue(size, policy)
        self.thread = threading.Thread(target=self._run, name=f"sink {name}", daemon=True)
        self.abandon = threading.Event()

    def deliver(self, item: Frame | EndOfStream, give_up: threading.Event) -> None:
        """Queue ``item``; lossless sinks are waited for unless ``give_up`` or the sink died."""
        try:
            while not self.queue.put(item, timeout=POLL_S):
                if give_up.is_set() or not self.thread.is_alive():
                    return
        except QueueClosed:
            pass  # the sink failed and retired
        finally:
            self.counters.drops = self.queue.drops

    def _run(self) -> None:
        opened = False
        try:
            while True:
                try:
                    item = self.queue.get(timeout=POLL_S)
                except QueueClosed:
                    return
                if item is None:
                    continue
                if isinstance(item, EndOfStream) or self.abandon.is_set():
                    return
                picked = time.monotonic()
                if not opened:
                    self.sink.take_preset(self._chosen_preset)
                    self.sink.open(item, self._fps_hint())
                    opened = True
                self.sink.write(item)
                self.metrics.written(self.counters, item, picked, time.monotonic())
        except Exception as err:  # a failing output must not take the others down
            self._fail(err)
        finally:
            self.queue.close()
            try:
                self.sink.close()
            except Exception as err:
                if not self.counters.error:  # a failed sink's close failing is no news
                    self._fail(err, when="could not be finalized: ")

    def _fail(self, err: BaseException, when: str = "") -> None:
        """Record the failure and say it once, now (a long run must not wait for its end)."""
        prefix = "" if isinstance(err, UserError) else when
        self.counters.error = prefix + one_line(err)
        log.error("output %s failed: %s", redact(self.name), self.counters.error)
        if not isinstance(err, UserError):
            log.debug("output failure", exc_info=True)


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return redact(text if isinstance(err, UserError) else f"{type(err).__name__}: {text}")


class Pipeline:
    """``Pipeline(config).run()`` streams until EOF, ``max_frames``, ``duration`` or stop().

    Setup problems (bad output, unavailable backend, a source that cannot be opened) raise a
    :class:`~streamdenoise.errors.UserError` before any thread starts. Once streaming, a
    source failure ends the run with every output finalized and ``Report.error`` set.
    """

    def __init__(self, config: PipelineConfig, backend: Denoiser | None = None) -> None:
        """``backend``: a denoiser built by the caller (e.g. an ``AutoDenoiser`` over tiers of
        its own) instead of the one ``config`` names; the pipeline closes it at the end."""
        self.config = config
        self._given_backend = backend
        self.metrics = Metrics()
        self._stop_source = threading.Event()
        self._stopping = threading.Event()
        self._interrupted = False
        self._fatal: BaseException | None = None
        self._source_error: BaseException | None = None
        self._source: Source | None = None
        self._backend: Denoiser | None = None
        self._runners: list[SinkRunner] = []
        self._started = threading.Event()
        self._size: tuple[int, int] | None = None
        self._auto: AutoDenoiser | None = None
        #: When the previous frame left the worker and when its denoising ended.
        self._last_finished = (0.0, 0.0)

    # -- control --------------------------------------------------------------------------
    def stop(self, interrupted: bool = False) -> None:
        """End the stream from any thread; a second call also drops frames still queued."""
        if interrupted:
            self._interrupted = True
        if self._stopping.is_set():
            for runner in self._runners:
                runner.abandon.set()
        self._stop_source.set()
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def backend(self) -> Denoiser | None:
        return self._backend

    def snapshot(self) -> dict:
        """Live figures for a status display (safe to call from any thread)."""
        snap = self.metrics.snapshot()
        if self._auto is not None:
            snap["model"] = self._auto.label
        if self._source is not None:
            snap.update(source_state=self._source.state.value, reconnects=self._source.reconnects)
        return snap

    # -- run ------------------------------------------------------------------------------
    def run(self) -> Report:
        config = self.config
        if not config.outputs:
            raise UserError("no outputs given")
        sinks: list[Sink] = []
        try:
            for spec in config.outputs:
                sinks.append(open_sink(spec, config.sink_options))
            self._source = open_source(config.source, config.source_options)
            if config.max_frames and hasattr(self._source, "ensure_length"):
                self._source.ensure_length(config.max_frames)
            self._backend = self._create_backend()
            self._open_source()
            if self._auto is not None:
                self._start_auto(sinks)
        except BaseException:
            for sink in sinks:  # e.g. a preview server that already bound its port
                with contextlib.suppress(Exception):
                    sink.close()
            if self._backend is not None:
                self._backend.close()
            raise
        try:
            return self._stream(sinks)  # from here on the sink threads close the sinks
        finally:
            self._backend.close()

    def _create_backend(self) -> Denoiser:
        config = self.config
        backend = self._given_backend or create_denoiser(
            config.backend,
            model=config.model,
            precision=config.precision,
            device=config.device,
            threads=config.threads,
            strength=config.strength,
            engine_cache=config.engine_cache,
            recalibrate=config.recalibrate,
            still_camera=config.still_camera,
            two_pass=config.two_pass,
        )
        if backend.name == "auto":  # an AutoDenoiser: it gets the source's rate and timings
            self._auto = backend
        return backend

    def _start_auto(self, sinks: list[Sink]) -> None:
        """Tell ``--model auto`` the source's rate and whether frames may drop; where the
        source knows its frame size, calibrate and choose now, before any frame waits."""
        self._auto.configure(
            self._source.fps,
            adaptive=self._policy() == "latest",
            encoders=[sink.x264_choice for sink in sinks if sink.x264_choice],
        )
        size = self._source.frame_size
        if size is not None:
            self._auto.prepare(*size)
            self._size = size

    def _chosen_preset(self) -> str | None:
        return self._auto.encoder_preset if self._auto is not None else None

    def _open_source(self) -> None:
        try:
            self._source.open()
        except BaseException:
            with contextlib.suppress(Exception):
                self._source.close()
            raise

    def _stream(self, sinks: list[Sink]) -> Report:
        config, source = self.config, self._source
        policy = self._policy()
        source_queue = FrameQueue(config.queue_size, policy)
        names = unique_names(config.outputs)
        for name, sink in zip(names, sinks, strict=True):
            if hasattr(sink, "on_quit"):
                sink.on_quit = self.stop
            if hasattr(sink, "stats_provider"):  # the HTTP preview's /stats
                sink.stats_provider = self.snapshot
            if source.audio is not None and sink.accepts_audio:
                sink.audio_input = (source.audio, source.audio.subscribe())
            self._runners.append(
                SinkRunner(name, sink, self.metrics, lambda: source.fps, self._chosen_preset)
            )
        capture = threading.Thread(
            target=self._capture, args=(source_queue,), name="capture", daemon=True
        )
        denoise = threading.Thread(
            target=self._denoise, args=(source_queue,), name="denoise", daemon=True
        )
        for runner in self._runners:
            runner.thread.start()
        denoise.start()
        capture.start()
        log.info(
            "streaming %s -> %s (%s, queue %s)",
            redact(source.describe()),
            ", ".join(redact(s.describe()) for s in sinks),
            self._backend.name,
            policy,
        )
        status = _start_status(self) if config.status else None
        try:
            self._wait(denoise)
            streaming_end = time.monotonic()  # what follows is finalizing the outputs
            for runner in self._runners:
                self._join_interruptibly(runner.thread)
        finally:
            if status:
                status.stop()
        self._stop_source.set()
        capture.join(timeout=config.source_options.timeout_s + 2)
        if capture.is_alive():
            log.warning(
                "source %s did not stop in time; leaving it behind", redact(source.describe())
            )
        return self._report(streaming_end)

    def _wait(self, denoise: threading.Thread) -> None:
        """Main thread: wait for the denoise worker, enforcing ``duration`` and staying
        responsive to signals (their handlers run here between short joins)."""
        deadline = None
        while denoise.is_alive():
            if deadline is None and self.config.duration and self._started.is_set():
                deadline = time.monotonic() + self.config.duration
            if deadline is not None and time.monotonic() >= deadline:
                self.stop()
            denoise.join(timeout=POLL_S)

    def _policy(self) -> Policy:
        return self.config.policy or ("latest" if self._source.live else "lossless")

    def _join_interruptibly(self, thread: threading.Thread) -> None:
        while thread.is_alive():
            thread.join(timeout=POLL_S)

    # -- stages ---------------------------------------------------------------------------
    def _capture(self, out: FrameQueue) -> None:
        source, limit = self._source, self.config.max_frames
        error: BaseException | None = None
        lossless = out.policy == "lossless"
        count = 0
        try:
            for frame in source.frames(self._stop_source):
                self._started.set()
                if not self._put(out, frame):
                    break
                self.metrics.captured(frame)
                self.metrics.source_drops = out.drops
                count += 1
                if lossless and limit and count >= limit:
                    break
        except SourceError as err:
            error = err
        except Exception as err:  # a bug in a source: end cleanly, re-raised by run()
            error = err
            self._fatal = self._fatal or err
        finally:
            self._started.set()
            if source.state not in (SourceState.ENDED, SourceState.FAILED):
                # Stopped early (max_frames, stop()) or failed without saying so itself.
                source.state = SourceState.FAILED if error else SourceState.ENDED
            try:
                source.close()
            except Exception as err:
                log.warning("closing the source failed: %s", redact(str(err)))
            with contextlib.suppress(QueueClosed):
                out.put(EndOfStream(error))

    def _put(self, out: FrameQueue, frame: Frame) -> bool:
        """Blocks (lossless) until there is room; False when the pipeline is stopping."""
        try:
            while True:
                # Marked before each attempt: the consumer may read it as soon as put succeeds.
                frame.marks["enqueued"] = time.monotonic()
                if out.put(frame, timeout=POLL_S):
                    break
                if self._stop_source.is_set():
                    return False
        except QueueClosed:
            return False
        return True

    def _denoise(self, source_queue: FrameQueue) -> None:
        """Frames go to the denoiser in order, up to its ``frames_in_flight`` at a time, and
        to the sinks in order; on every way out the frames already handed to it finish."""
        in_flight: deque[tuple[Frame, Future[np.ndarray]]] = deque()
        submitted, more = 0, True
        try:
            while not self._stopping.is_set() and (more or in_flight):
                if in_flight and (
                    not more
                    or len(in_flight) >= self._backend.frames_in_flight
                    or in_flight[0][1].done()
                ):
                    self._finish(*in_flight.popleft(), source_queue)
                    if not any(r.thread.is_alive() for r in self._runners):
                        break  # every output failed: nothing left to feed
                    continue
                try:
                    item = source_queue.get(timeout=POLL_S)  # a finished frame wakes it
                except QueueClosed:
                    break
                if item is None:
                    continue
                if isinstance(item, EndOfStream):
                    if item.error is not None:
                        self._source_error = item.error
                    more = False
                    self._backend.flush()
                    continue
                if in_flight and self._changes_stream(item):
                    self._backend.flush()
                    while in_flight:  # the earlier frames finish with the state they began
                        self._finish(*in_flight.popleft(), source_queue)
                future = self._submit(item)
                future.add_done_callback(lambda _: source_queue.wake())
                in_flight.append((item, future))
                submitted += 1
                if self.config.max_frames and submitted >= self.config.max_frames:
                    more = False
                    self._backend.flush()
        except Exception as err:
            self._fatal = self._fatal or err
        finally:
            self._stop_source.set()
            source_queue.close()
            if in_flight:  # a stop or a failure: no frame taken is left waiting
                with contextlib.suppress(Exception):
                    self._backend.flush()
            while in_flight:
                frame, future = in_flight.popleft()
                if self._fatal is None:
                    with contextlib.suppress(Exception):
                        self._finish(frame, future, source_queue)
                else:
                    with contextlib.suppress(Exception):
                        future.result()
            for runner in self._runners:
                runner.deliver(EndOfStream(), threading.Event())

    def _changes_stream(self, frame: Frame) -> bool:
        """Whether the denoiser must be prepared or reset before this frame."""
        return (frame.width, frame.height) != self._size or frame.discontinuity

    def _submit(self, frame: Frame) -> Future[np.ndarray]:
        frame.marks["dequeued"] = time.monotonic()
        size = (frame.width, frame.height)
        if size != self._size:
            if self._size is not None:
                log.info("frame size changed %sx%s -> %sx%s", *self._size, *size)
                self._backend.reset()
            self._backend.prepare(*size)
            self._size = size
        elif frame.discontinuity:
            self._backend.reset()
        if self.config.sink_options.compare:
            frame.original = frame.image  # kept for noisy | denoised views
        future = self._backend.submit(frame.image)
        future.add_done_callback(lambda _: frame.marks.setdefault("denoised", time.monotonic()))
        return future

    def _finish(self, frame: Frame, future: Future[np.ndarray], source_queue: FrameQueue) -> None:
        """A denoised frame to every sink; ``--model auto`` hears what it cost. With frames
        in flight, a frame's share of the worker is the time since the previous one finished
        (or since it was taken, if later)."""
        frame.image = future.result()
        frame.marks.setdefault("denoised", time.monotonic())  # the callback may come later
        self.metrics.denoised(frame)
        for runner in self._runners:
            runner.deliver(frame, self._stopping)
        now, marks = time.monotonic(), frame.marks
        if self._auto is not None:
            self._auto.frame_done(
                now,
                busy_s=now - max(marks["dequeued"], self._last_finished[0]),
                denoise_s=marks["denoised"] - max(marks["dequeued"], self._last_finished[1]),
                drops=source_queue.drops,
            )
        self._last_finished = (now, marks["denoised"])

    # -- results ----------------------------------------------------------------------------
    def _report(self, streaming_end: float) -> Report:
        if self._fatal is not None and not isinstance(self._fatal, UserError):
            raise self._fatal  # a bug: outputs are finalized, now show the traceback
        source, backend = self._source, self._backend
        source_info = {
            "spec": self.config.source,
            "description": source.describe(),
            "audio": source.audio.describe() if source.audio else None,
            **source.stats(),
        }
        error, logged = None, False
        if isinstance(self._fatal, UserError):
            error = one_line(self._fatal)
        elif self._source_error is not None:
            error = one_line(self._source_error)
        else:  # the run went on without them, but the user asked for these outputs
            failed = [f"{r.name}: {r.counters.error}" for r in self._runners if r.counters.error]
            error = ("output failed: " + "; ".join(failed)) if failed else None
            logged = bool(failed)
        sink_stats = {}
        for runner in self._runners:
            try:
                sink_stats[runner.name] = {
                    "description": runner.sink.describe(),
                    **runner.sink.stats(),
                }
            except Exception as err:
                sink_stats[runner.name] = {"stats_error": one_line(err)}
        described = backend.describe()
        auto = {"auto": self._auto.report()} if self._auto is not None else {}
        stats = self.metrics.report(
            source=source_info,
            backend=described,
            sink_stats=sink_stats,
            model=described.get("model"),
            switches=auto["auto"]["switches"] if auto else [],
            **auto,
            policy=self._policy(),
            end=streaming_end,
            shutdown_s=round(time.monotonic() - streaming_end, 3),
            interrupted=self._interrupted,
            error=error,
        )
        if self.config.stats_json and not _write_stats(Path(self.config.stats_json), stats):
            error = error or f"cannot write --stats-json {self.config.stats_json}"
            logged = True
        return Report(stats=stats, error=error, interrupted=self._interrupted, error_logged=logged)


def _write_stats(path: Path, stats: dict) -> bool:
    """Write the report atomically (a reader never sees half a file); False, said once, when
    the disk refuses."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(stats, indent=2) + "\n")
        partial.replace(path)
    except OSError as err:
        log.error("cannot write --stats-json %s: %s", path, err.strerror)
        with contextlib.suppress(OSError):
            partial.unlink()
        return False
    return True


def unique_names(outputs: list[Output]) -> list[str]:
    """Outputs as report keys, numbered when the same output is given twice."""
    names: list[str] = []
    for spec in outputs:
        name, n = output_name(spec), 2
        while name in names:
            name, n = f"{output_name(spec)}#{n}", n + 1
        names.append(name)
    return names


def _start_status(pipeline: Pipeline):
    from streamdenoise.status import StatusLine

    status = StatusLine(pipeline.snapshot)
    return status if status.start() else None
