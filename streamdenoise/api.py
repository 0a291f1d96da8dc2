"""The Python API: denoised frames into your own code.

* :func:`frames` — iterate over the denoised frames of any source (a camera, a stream, a file,
  ``demo``) as numpy arrays with timestamps; :func:`frames_async` is the same for asyncio.
* :class:`Denoiser` — denoise numpy frames you already have, one call per frame, with the
  temporal state kept between calls.
* :class:`~streamdenoise.pipeline.PipelineConfig` takes any callable (or
  :class:`~streamdenoise.sinks.base.Sink`) as an output next to files and streams.

Every default is the CLI's (:mod:`streamdenoise.settings`): ``backend="auto"`` is the trained
model on the fastest runtime here.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions, SourceOptions
from streamdenoise.pipeline import Pipeline, PipelineConfig
from streamdenoise.settings import default
from streamdenoise.sinks import Output

_POLL_S = 0.1


@dataclass(frozen=True)
class DenoisedFrame:
    """One denoised frame."""

    #: H×W×3 uint8, RGB.
    image: np.ndarray
    #: Seconds on the source's clock (its presentation timestamp), or since the first frame
    #: was captured when the source has no timestamps.
    timestamp: float
    #: Position in the stream, from 0.
    index: int
    #: The noisy input (only with ``keep_noisy=True``), H×W×3 uint8 RGB.
    noisy: np.ndarray | None = None


class StreamFailed(RuntimeError):
    """The source died mid-stream (after any reconnects it was allowed); the message says why."""


def frames(
    source: str,
    *,
    backend: str = default("backend"),
    model: str | None = None,
    precision: str | None = None,
    device: str = default("device"),
    threads: int | None = None,
    strength: float | None = None,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    loop: bool = default("loop"),
    realtime: bool = default("realtime"),
    max_frames: int | None = None,
    duration: float | None = None,
    outputs: list[Output] | None = None,
    keep_noisy: bool = False,
    buffer: int = default("queue_size"),
    two_pass: bool = default("two_pass"),
) -> Iterator[DenoisedFrame]:
    """Denoised frames of ``source`` (``demo``, a camera index, a URL, a file, an image folder).

    The source is read and denoised on background threads while you handle a frame; a file is
    read losslessly (your loop sets the pace), a live source drops its oldest frames when your
    loop falls behind, as ``run`` does. ``outputs`` also go on receiving every frame (e.g.
    ``["clean.mp4"]``). Leaving the loop early stops the pipeline and finalizes the outputs.
    Setup errors raise :class:`~streamdenoise.errors.UserError` at the first ``next()``; a
    source that dies mid-stream raises :class:`StreamFailed` after the last good frame.
    ``two_pass``: the recurrent model also runs backward and the two are averaged (cleaner;
    each frame arrives 10 frames late, see ``run --two-pass``).
    """
    handoff: queue.Queue[Frame | None] = queue.Queue(maxsize=max(1, buffer))
    closed = threading.Event()

    def deliver(frame: Frame) -> None:
        while not closed.is_set():
            try:
                handoff.put(frame, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    deliver.__qualname__ = "streamdenoise.frames"
    config = PipelineConfig(
        source=source,
        outputs=[deliver, *(outputs or [])],
        backend=backend,
        model=model,
        precision=precision,
        device=device,
        threads=threads,
        strength=strength,
        max_frames=max_frames,
        duration=duration,
        two_pass=two_pass,
        source_options=SourceOptions(size=size, fps=fps, loop=loop, realtime=realtime),
        sink_options=SinkOptions(compare=keep_noisy),
        status=False,
    )
    yield from _stream(Pipeline(config), handoff, closed, keep_noisy)


def _stream(
    pipeline: Pipeline,
    handoff: queue.Queue[Frame | None],
    closed: threading.Event,
    keep_noisy: bool,
) -> Iterator[DenoisedFrame]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["report"] = pipeline.run()
        except BaseException as err:  # handed to the consumer's thread below
            outcome["error"] = err
        finally:
            handoff.put(None)  # may block until the consumer takes a frame or leaves

    worker = threading.Thread(target=run, name="streamdenoise.frames", daemon=True)
    worker.start()
    first_capture: float | None = None
    try:
        while True:
            frame = handoff.get()
            if frame is None:
                break
            if first_capture is None:
                first_capture = frame.capture_ts
            timestamp = frame.pts_seconds
            if timestamp is None:
                timestamp = frame.capture_ts - first_capture
            yield DenoisedFrame(
                image=frame.image,
                timestamp=timestamp,
                index=frame.seq,
                noisy=frame.original if keep_noisy else None,
            )
    finally:
        closed.set()
        pipeline.stop()
        while worker.is_alive():  # drain so that the worker's last put never blocks
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=_POLL_S)
    if "error" in outcome:
        raise outcome["error"]
    report = outcome.get("report")
    if report is not None and report.error:
        raise StreamFailed(report.error)


async def frames_async(source: str, **options: Any) -> AsyncIterator[DenoisedFrame]:
    """:func:`frames` for asyncio: each frame is awaited, the event loop never blocks.

    Takes the same keyword arguments as :func:`frames`. Leaving ``async for`` early (or
    cancelling the task) stops the pipeline.
    """
    import asyncio

    iterator = frames(source, **options)
    done = object()
    try:
        while True:
            item = await asyncio.to_thread(next, iterator, done)
            if item is done:
                return
            yield item
    finally:
        await asyncio.to_thread(iterator.close)


class Denoiser:
    """Denoise numpy frames one call at a time, keeping the temporal state between calls.

    ``Denoiser()`` runs what ``run`` would (the trained model on the fastest runtime here).
    Call it with H×W×3 uint8 RGB frames of one stream in order; call :meth:`reset` at a cut
    or before another stream. Not thread-safe: one Denoiser per stream (from asyncio, call it
    through ``await asyncio.to_thread(denoiser, image)``).
    """

    def __init__(
        self,
        backend: str = default("backend"),
        *,
        model: str | None = None,
        precision: str | None = None,
        device: str = default("device"),
        threads: int | None = None,
        strength: float | None = None,
    ) -> None:
        from streamdenoise.runtime import create_denoiser

        self._backend = create_denoiser(
            backend,
            model=model,
            precision=precision,
            device=device,
            threads=threads,
            strength=strength,
        )
        self._size: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.process(image)

    def process(self, image: np.ndarray) -> np.ndarray:
        """The denoised frame (a new array), H×W×3 uint8 RGB."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 RGB frame, got {image.shape} {image.dtype}")
        size = (image.shape[1], image.shape[0])
        if size != self._size:
            if self._size is not None:
                self._backend.reset()
            self._backend.prepare(*size)
            self._size = size
        return self._backend.process(image)

    def reset(self) -> None:
        """Forget the temporal state (a scene cut, a new stream)."""
        self._backend.reset()

    @property
    def info(self) -> dict[str, Any]:
        """Backend, model, precision and device in use."""
        return self._backend.describe()

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Denoiser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
