"""Prometheus metrics of ``serve``, exposed at ``/metrics`` through ``prometheus_client``.

Counters and gauges are read from the live cameras and denoisers at scrape time (one custom
collector), so a camera that keeps running across a reload keeps counting, and a removed
camera's series disappear with it. The two latency histograms and the batch-size histogram
are ``prometheus_client`` histograms fed as frames go by. Labels carry camera and output
names and model settings only — output names are redacted, sources are never a label.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streamdenoise.redact import redact

#: ``restarting``: on a Ray cluster, the camera's worker died and Ray is starting it again.
CAMERA_STATES = (
    "starting", "connecting", "live", "reconnecting", "ended", "stopped", "restarting",
)  # fmt: skip
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Telemetry:
    """The registry of one service; ``snapshot()`` gives (cameras, workers) to report."""

    def __init__(self, snapshot: Callable[[], tuple[list, list]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.e2e = Histogram(
            "streamdenoise_camera_e2e_latency_seconds",
            "Captured -> written by an output, per camera and output",
            ["camera", "output"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "streamdenoise_denoiser_batch_size",
            "Frames per call of a shared denoiser",
            ["denoiser"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "streamdenoise_denoiser_inference_seconds",
            "Duration of one call of a shared denoiser (a whole batch)",
            ["denoiser"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(snapshot))

    def written(self, camera: str, output: str, seconds: float) -> None:
        self.e2e.labels(camera, redact(output)).observe(seconds)

    def observer(self, denoiser: str) -> Callable[[int, float], None]:
        batch, inference = self.batch.labels(denoiser), self.inference.labels(denoiser)

        def observe(size: int, seconds: float) -> None:
            batch.observe(size)
            inference.observe(seconds)

        return observe

    def forget_camera(self, camera: str, outputs: Iterable[str]) -> None:
        for output in outputs:
            with contextlib.suppress(KeyError):  # it never wrote a frame
                self.e2e.remove(camera, redact(output))

    def forget_denoiser(self, denoiser: str) -> None:
        for histogram in (self.batch, self.inference):
            with contextlib.suppress(KeyError):
                histogram.remove(denoiser)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector:
    def __init__(self, snapshot: Callable[[], tuple[list, list]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []  # families depend on the cameras of the moment

    def collect(self) -> Iterable[Metric]:
        cameras, workers = self._snapshot()
        yield from _camera_families(cameras)
        yield from _denoiser_families(workers)


def _camera_families(cameras: list) -> Iterable[Metric]:
    def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
        return CounterMetricFamily(f"streamdenoise_camera_{name}", doc, labels=["camera", *extra])

    def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"streamdenoise_camera_{name}", doc, labels=["camera", *extra])

    frames_in = counter("frames_in", "Frames captured")
    frames_out = counter("frames_out", "Frames denoised")
    drops = counter("drops", "Frames dropped, by where", ("stage",))
    reconnects = counter("reconnects", "Reconnects of the source")
    failures = counter("denoise_failures", "Frames the denoiser failed on")
    written = counter("output_frames", "Frames written per output", ("output",))
    segments = counter(
        "output_segments", "Segments a recording opened, by x264 preset", ("output", "preset")
    )
    fps_in = gauge("fps_in", "Frames captured per second (last 2 s)")
    fps_out = gauge("fps_out", "Frames denoised per second (last 2 s)")
    for camera in cameras:
        name = camera.name
        frames_in.add_metric([name], camera.metrics.frames_in)
        frames_out.add_metric([name], camera.metrics.frames_out)
        drops.add_metric([name, "source_queue"], camera.queue.drops)
        drops.add_metric([name, "output_queue"], camera.out.drops)
        drops.add_metric([name, "outputs"], camera.metrics.sink_drops())
        reconnects.add_metric([name], camera.reconnects)
        failures.add_metric([name], camera.denoise_failures)
        for runner in camera.runners:
            output = redact(runner.name)
            written.add_metric([name, output], runner.counters.frames_written)
            for preset, count in runner.sink.stats().get("segments_per_x264_preset", {}).items():
                segments.add_metric([name, output, preset], count)
        fps_in.add_metric([name], camera.metrics.rate_in.rate())
        fps_out.add_metric([name], camera.metrics.rate_out.rate())
    yield from (frames_in, frames_out, drops, reconnects, failures, written, segments)
    yield from (fps_in, fps_out)
    yield from state_families(
        (camera.name, camera.state, camera.unready_reason() is None) for camera in cameras
    )


def state_families(cameras: Iterable[tuple[str, str, bool]]) -> tuple[Metric, Metric]:
    """``ready`` and ``state`` of cameras given as (name, state, ready)."""
    ready = GaugeMetricFamily(
        "streamdenoise_camera_ready",
        "1 when the camera counts as ready (see /readyz)",
        labels=["camera"],
    )
    state = GaugeMetricFamily(
        "streamdenoise_camera_state", "1 for the camera's current state", labels=["camera", "state"]
    )
    for name, current, is_ready in cameras:
        ready.add_metric([name], 1.0 if is_ready else 0.0)
        for value in CAMERA_STATES:
            state.add_metric([name, value], 1.0 if value == current else 0.0)
    return ready, state


def merge_families(sources: Iterable[tuple[Iterable[Metric], dict[str, str]]]) -> list[Metric]:
    """One family per name from the families of several processes (each camera and replica
    reports from one of them), ``extra`` labels added to every sample of that source's
    families named ``streamdenoise_denoiser_*``."""
    merged: dict[str, Metric] = {}
    for families, extra in sources:
        for family in families:
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type)
            samples = family.samples
            if extra and family.name.startswith("streamdenoise_denoiser_"):
                samples = [s._replace(labels={**s.labels, **extra}) for s in samples]
            into.samples.extend(samples)
    return list(merged.values())


def _denoiser_families(workers: list) -> Iterable[Metric]:
    info = GaugeMetricFamily(
        "streamdenoise_denoiser_info",
        "1 per shared denoiser, with its backend, model, precision, device and tier",
        labels=["denoiser", "backend", "model", "precision", "device", "tier", "sharing"],
    )
    frames = CounterMetricFamily(
        "streamdenoise_denoiser_frames", "Frames denoised", labels=["denoiser"]
    )
    busy = CounterMetricFamily(
        "streamdenoise_denoiser_busy_seconds", "Time spent in denoiser calls", labels=["denoiser"]
    )
    cameras = GaugeMetricFamily(
        "streamdenoise_denoiser_cameras", "Cameras sharing the denoiser", labels=["denoiser"]
    )
    for worker in workers:
        d = worker.describe()
        info.add_metric(
            [
                worker.name,
                str(d.get("backend", "")),
                str(d.get("model", "")),
                str(d.get("precision", "")),
                str(d.get("device", "")),
                str(d.get("tier", d.get("model", ""))),
                str(d.get("shared", "")),
            ],
            1.0,
        )
        frames.add_metric([worker.name], worker.stats.frames)
        busy.add_metric([worker.name], worker.stats.busy_s)
        cameras.add_metric([worker.name], worker.clients)
    yield from (info, frames, busy, cameras)
