"""One camera of ``serve``: its source thread, its queues, its outputs and its figures.

The pieces are the single-stream pipeline's (sources, FrameQueue, SinkRunner, Metrics); what
differs is that the denoiser is shared (the :class:`~streamdenoise.serve.service.BatchWorker`
pulls frames from :attr:`Camera.queue` and hands them back through :meth:`Camera.denoised`)
and that a camera never gives up: a source that cannot be opened, or gives up reconnecting,
is opened again with the same backoff, for as long as the service runs.

Threads: **capture** (source → ``queue``), **fan-out** (``out`` → each output's own queue),
one per output. Every queue between them is this camera's own, so a dead, frozen or slow
camera, or a stalled output, only ever drops this camera's frames.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from streamdenoise.errors import SourceError
from streamdenoise.frame import EndOfStream, Frame
from streamdenoise.frame_queue import FrameQueue, QueueClosed
from streamdenoise.metrics import Metrics, SinkCounters
from streamdenoise.options import stage_options
from streamdenoise.pipeline import POLL_S, SinkRunner, one_line, unique_names
from streamdenoise.redact import redact
from streamdenoise.serve.config import RECORD_OUTPUT, CameraConfig
from streamdenoise.serve.recording import SegmentedRecorder
from streamdenoise.sinks import open_sink
from streamdenoise.sinks.base import Sink
from streamdenoise.sources import open_source
from streamdenoise.sources.base import Source, SourceState
from streamdenoise.sources.network import backoff_delay

log = logging.getLogger(__name__)

#: Denoised frames waiting for this camera's fan-out thread.
OUT_QUEUE = 4
JPEG_QUALITY = 75
#: Largest side of a dashboard snapshot (the tiles are small; the encode stays cheap).
SNAPSHOT_MAX_SIDE = 640


class CameraMetrics(Metrics):
    """The pipeline's metrics plus a hook that feeds the Prometheus e2e histogram."""

    def __init__(self, on_written: Callable[[str, float], None] | None) -> None:
        super().__init__()
        self._on_written = on_written

    def written(self, sink: SinkCounters, frame: Frame, picked: float, done: float) -> None:
        super().written(sink, frame, picked, done)
        if self._on_written:
            self._on_written(sink.name, done - frame.capture_ts)


class Camera:
    """Runs one camera until :meth:`stop`; the worker calls take/denoised/ended."""

    def __init__(
        self,
        config: CameraConfig,
        worker,
        on_written: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.worker = worker
        settings = config.settings
        self.strength: float | None = settings["strength"]
        self.dstate = None  # the service's state for this camera (owned by the worker)
        self.source_options, self.sink_options = stage_options(settings)
        self.sink_options.compare = False  # the dashboard has its own noisy view
        self.metrics = CameraMetrics(
            (lambda output, seconds: on_written(self.name, output, seconds)) if on_written else None
        )
        self._stop = threading.Event()
        self._source: Source | None = None
        self._phase = "starting"
        self.last_error: str | None = None
        self.opens = 0
        self._reconnects_before = 0
        self.denoise_failures = 0
        self.started = time.monotonic()
        self.last_frame: float | None = None
        self.latest: Frame | None = None
        self.size: tuple[int, int] | None = None
        self.live = self._probe_live(config.source)
        policy = settings["policy"] or ("latest" if self.live else "lossless")
        self.queue = FrameQueue(settings["queue_size"], policy)
        self.out = FrameQueue(OUT_QUEUE, policy)
        self.runners = self._make_runners()
        self._capture = threading.Thread(target=self._capture_loop, name=f"capture {self.name}")
        self._fanout = threading.Thread(target=self._fanout_loop, name=f"fan-out {self.name}")
        self._capture.daemon = self._fanout.daemon = True

    def _probe_live(self, spec: str) -> bool:
        """Whether the source is live, from a source object that is not opened."""
        return open_source(spec, self.source_options).live

    def _make_runners(self) -> list[SinkRunner]:
        sinks: list[Sink] = []
        try:
            for spec in self.config.outputs:
                if spec == RECORD_OUTPUT:
                    record = self.config.record
                    sinks.append(SegmentedRecorder(self.name, record, self.sink_options))
                else:
                    sinks.append(open_sink(spec, self.sink_options))
        except BaseException:
            for sink in sinks:
                with contextlib.suppress(Exception):
                    sink.close()
            raise
        names = unique_names(self.config.outputs)
        return [
            SinkRunner(name, sink, self.metrics, self.fps, self.worker.encoder_preset)
            for name, sink in zip(names, sinks, strict=True)
        ]

    def fps(self) -> float | None:
        """The source's nominal frame rate, once known."""
        source = self._source
        return (source.fps if source else None) or self.source_options.fps

    def drops(self) -> int:
        """Frames this camera's source queue has dropped so far."""
        return self.queue.drops

    def encoders(self) -> list[str]:
        """The libx264 preset of each output that encodes every frame of this camera (``auto``
        where it takes the shared denoiser's choice, a recording at each segment)."""
        return [runner.sink.x264_choice for runner in self.runners if runner.sink.x264_choice]

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for runner in self.runners:
            runner.thread.start()
        self._fanout.start()
        self._capture.start()
        self.worker.attach(self)

    def stop(self) -> None:
        """Stop capturing, finish what is queued for the outputs, finalize every file."""
        self._stop.set()
        self._capture.join(timeout=self.source_options.timeout_s + 5)
        self.worker.detach(self)
        with contextlib.suppress(QueueClosed):
            self.out.put(EndOfStream())
        self._fanout.join(timeout=30)
        for runner in self.runners:
            runner.thread.join(timeout=60)
        self._phase = "stopped"

    # -- capture -----------------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        attempt = 0
        reported: str | None = None
        while not self._stop.is_set():
            source = None
            try:
                source = open_source(self.config.source, self.source_options)
                self._source = source
                self._phase = "connecting"
                source.open()
                self.opens += 1
                attempt, reported = 0, None
                self._phase = "running"
                if self._stream(source, first_open=self.opens == 1):
                    return  # the input ended (a file that does not loop)
            except SourceError as err:
                self.last_error = one_line(err)
            except Exception as err:  # a bug in a source must not end the service
                self.last_error = one_line(err)
                log.error("camera %s: %s", self.name, self.last_error, exc_info=True)
            finally:
                if source is not None:
                    self._reconnects_before += source.reconnects
                    with contextlib.suppress(Exception):
                        source.close()
            if self._stop.is_set():
                break
            self._phase = "reconnecting"
            delay = backoff_delay(
                attempt, self.source_options.backoff_initial_s, self.source_options.backoff_max_s
            )
            attempt += 1
            if self.last_error != reported:  # one line per new problem, not one per retry
                reported = self.last_error
                log.warning("camera %s: %s; retrying with backoff", self.name, reported or "lost")
            self._stop.wait(delay)

    def _stream(self, source: Source, first_open: bool) -> bool:
        """Frames into the queue until stop, EOF (True) or a SourceError."""
        discontinuity = not first_open
        for frame in source.frames(self._stop):
            frame.stream_id = self.name
            frame.discontinuity = frame.discontinuity or discontinuity
            discontinuity = False
            if not self._put(frame):
                return False
            self.metrics.captured(frame)
            self.metrics.source_drops = self.queue.drops
            self.last_frame = frame.capture_ts
            self.worker.notify()
        if self._stop.is_set():
            return False
        self._phase = "ended"
        with contextlib.suppress(QueueClosed):
            self.queue.put(EndOfStream())
        self.worker.notify()
        return True

    def _put(self, frame: Frame) -> bool:
        while not self._stop.is_set():
            frame.marks["enqueued"] = time.monotonic()
            if self.queue.put(frame, timeout=POLL_S):
                return True
        return False

    # -- called by the worker --------------------------------------------------------------------
    def take(self) -> Frame | EndOfStream | None:
        try:
            return self.queue.get(timeout=0)
        except QueueClosed:
            return None

    def ready_for_more(self) -> bool:
        """A lossless camera waits for its outputs; a live one drops its own oldest instead."""
        return self.out.policy == "latest" or len(self.out) < self.out.maxsize

    def denoised(self, frame: Frame) -> None:
        self.metrics.denoised(frame)
        self.latest = frame
        self.size = (frame.width, frame.height)
        with contextlib.suppress(QueueClosed):
            self.out.put(frame)

    def ended(self, item: EndOfStream) -> None:
        with contextlib.suppress(QueueClosed):
            self.out.put(item)

    def denoise_failed(self, frame: Frame, error: BaseException) -> None:
        self.denoise_failures += 1
        self.last_error = f"denoise failed: {one_line(error)}"
        count = self.denoise_failures
        if count in (1, 10, 100) or count % 1000 == 0:  # a log line, not a flood
            log.error("camera %s: %s (%d so far)", self.name, self.last_error, count)
        self.dstate = None  # start the stream afresh

    # -- fan-out ---------------------------------------------------------------------------------
    def _fanout_loop(self) -> None:
        give_up = threading.Event()
        while True:
            try:
                item = self.out.get(timeout=POLL_S)
            except QueueClosed:
                break
            if item is None:
                continue
            for runner in self.runners:
                runner.deliver(item, give_up)
            if isinstance(item, EndOfStream):
                break
        self.out.close()

    # -- figures ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """starting | connecting | live | reconnecting | ended | stopped."""
        if self._phase == "running" and self._source is not None:
            state = self._source.state
            if state == SourceState.RECONNECTING:
                return "reconnecting"
            if state == SourceState.LIVE:
                return "live"
            return "connecting" if state == SourceState.CONNECTING else "reconnecting"
        return self._phase

    @property
    def reconnects(self) -> int:
        source = self._source
        current = source.reconnects if source is not None and self._phase == "running" else 0
        return self._reconnects_before + current + max(self.opens - 1, 0)

    def source_error(self) -> str | None:
        source = self._source
        if source is not None:
            with contextlib.suppress(Exception):
                return source.stats().get("last_error") or self.last_error
        return self.last_error

    def unready_reason(self, now: float | None = None) -> str | None:
        """Why this camera makes the service unready, or None."""
        now = time.monotonic() if now is None else now
        if not self.config.enabled:
            return None
        failed = [f"{n}: {c.error}" for n, c in self.metrics.sinks.items() if c.error]
        if failed:
            return f"output failed ({'; '.join(failed)})"
        state = self.state
        if state == "ended":
            return "source ended"
        silent = now - (self.last_frame or self.started)
        if self.last_frame is not None and silent <= self.config.ready_budget_s:
            return None  # live, or away for less than its budget
        if state in ("reconnecting", "connecting", "starting"):
            error = self.source_error()
            return f"{state} for {silent:.0f} s" + (f" ({error})" if error else "")
        return f"no frame for {silent:.0f} s"

    def snapshot_jpeg(self, view: str) -> bytes | None:
        """The newest frame as a small JPEG: denoised, or the input with ``view="noisy"``."""
        import cv2

        frame = self.latest
        if frame is None:
            return None
        image = frame.original if view == "noisy" and frame.original is not None else frame.image
        height, width = image.shape[:2]
        scale = SNAPSHOT_MAX_SIDE / max(height, width)
        if scale < 1:
            image = cv2.resize(image, (round(width * scale), round(height * scale)),
                               interpolation=cv2.INTER_AREA)  # fmt: skip
        bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
        ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return jpeg.tobytes() if ok else None

    def status(self) -> dict:
        snap = self.metrics.snapshot()
        source = self._source
        return {
            "name": self.name,
            "enabled": self.config.enabled,
            "state": self.state,
            "ready": self.unready_reason() is None,
            "reason": self.unready_reason(),
            "source": redact(source.describe() if source else self.config.source),
            "size": f"{self.size[0]}x{self.size[1]}" if self.size else None,
            "fps_in": round(snap["fps_in"], 2),
            "fps_out": round(snap["fps_out"], 2),
            "frames_in": self.metrics.frames_in,
            "frames_out": self.metrics.frames_out,
            "drops": {
                "source_queue": self.queue.drops,
                "output_queue": self.out.drops,
                "outputs": self.metrics.sink_drops(),
            },
            "reconnects": self.reconnects,
            "denoise_failures": self.denoise_failures,
            "e2e_p50_ms": _round(snap["e2e_p50_ms"]),
            "e2e_p99_ms": _round(snap["e2e_p99_ms"]),
            "last_error": self.source_error(),
            "outputs": [
                {
                    "name": runner.name,
                    "frames_written": runner.counters.frames_written,
                    "drops": runner.counters.drops,
                    "error": runner.counters.error,
                    **_sink_stats(runner.sink),
                }
                for runner in self.runners
            ],
        }


def stop_all(cameras: list[Camera]) -> None:
    """Stop cameras in parallel: each finalizes its own files."""
    if not cameras:
        return
    with ThreadPoolExecutor(max_workers=len(cameras)) as pool:
        for future in [pool.submit(camera.stop) for camera in cameras]:
            with contextlib.suppress(Exception):
                future.result()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _sink_stats(sink: Sink) -> dict:
    try:
        return sink.stats()
    except Exception as err:  # a sink's figures must never break the API
        return {"stats_error": one_line(err)}
