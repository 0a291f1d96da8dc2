"""Pipeline behaviour through the Python API with small test-only sources and sinks: a source
that dies mid-stream, a size change with a discontinuity, and a slow live output next to a
file. Outputs are real files checked with PyAV."""

from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from helpers import probe

import streamdenoise.pipeline as pipeline_module
from streamdenoise.backends.two_pass import BLOCK, LOOKAHEAD
from streamdenoise.errors import SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.pipeline import Pipeline, PipelineConfig
from streamdenoise.sinks import open_sink
from streamdenoise.sinks.base import Sink
from streamdenoise.sources.base import Source, SourceState


class ScriptedSource(Source):
    """Yields frames of the given sizes at 25 fps; optionally dies with a SourceError."""

    def __init__(self, sizes: list[tuple[int, int]], die_with: str | None = None,
                 live: bool = False, interval: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.sizes, self.die_with, self.live, self.interval = sizes, die_with, live, interval
        self.fps = 25.0
        self.closed = False

    def open(self) -> None:
        self.state = SourceState.LIVE

    def frames(self, stop: threading.Event):
        previous = None
        for seq, (w, h) in enumerate(self.sizes):
            if stop.is_set():
                return
            image = np.full((h, w, 3), (seq * 9) % 256, np.uint8)
            yield Frame(image, seq=seq, pts=seq, time_base=Fraction(1, 25),
                        discontinuity=previous is not None and previous != (w, h))  # fmt: skip
            previous = (w, h)
            if self.interval:
                time.sleep(self.interval)
        if self.die_with:
            self.state = SourceState.FAILED
            raise SourceError(self.die_with)
        self.state = SourceState.ENDED

    def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return "scripted"


class SlowLiveSink(Sink):
    """A display-like output that takes 50 ms per frame."""

    lossless = False

    def __init__(self) -> None:
        self.written = 0

    def open(self, first, fps) -> None:
        pass

    def write(self, frame) -> None:
        time.sleep(0.05)
        self.written += 1

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return "slow"


@pytest.fixture
def use_source(monkeypatch):
    def install(source: Source) -> Source:
        monkeypatch.setattr(pipeline_module, "open_source", lambda spec, options: source)
        return source

    return install


def config(test_backend: str, *outputs: str, **kw) -> PipelineConfig:
    return PipelineConfig(source="scripted", outputs=list(outputs), backend=test_backend,
                          status=False, **kw)  # fmt: skip


def test_source_dying_mid_stream_finalizes_outputs(tmp_path, test_backend, use_source):
    source = use_source(ScriptedSource([(64, 48)] * 12, die_with="camera unplugged"))
    out = tmp_path / "o.mp4"
    report = Pipeline(config(test_backend, str(out))).run()
    assert report.exit_code == 1
    assert report.error == "camera unplugged"
    assert report.stats["source"]["state"] == "failed"
    assert source.closed
    assert probe(out).frames == 12


def test_size_change_prepares_and_resets_the_backend(tmp_path, test_backend, use_source):
    use_source(ScriptedSource([(64, 48)] * 5 + [(96, 64)] * 5))
    out = tmp_path / "o.mkv"
    pipeline = Pipeline(config(test_backend, str(out), "null"))
    report = pipeline.run()
    assert report.exit_code == 0
    assert pipeline.backend.prepared == [(64, 48), (96, 64)]
    assert pipeline.backend.resets == 1
    written = probe(out)
    assert (written.frames, written.width, written.height) == (10, 64, 48)  # scaled to the first


def test_slow_live_output_never_stalls_a_file(tmp_path, test_backend, use_source, monkeypatch):
    use_source(ScriptedSource([(64, 48)] * 60))
    slow = SlowLiveSink()

    def pick(spec: str, options: SinkOptions) -> Sink:
        return slow if spec == "slow" else open_sink(spec, options)

    monkeypatch.setattr(pipeline_module, "open_sink", pick)
    out = tmp_path / "o.mkv"
    report = Pipeline(config(test_backend, str(out), "slow")).run()
    assert report.exit_code == 0
    assert probe(out).frames == 60
    sinks = report.stats["sinks"]
    assert sinks[str(out)]["drops"] == 0
    assert sinks["slow"]["drops"] > 0
    assert sinks["slow"]["frames_written"] == slow.written < 60


def test_max_frames_is_exact_even_with_the_latest_policy(tmp_path, test_backend, use_source):
    use_source(ScriptedSource([(64, 48)] * 2000, live=True, interval=0.002))
    out = tmp_path / "o.mkv"
    report = Pipeline(config(test_backend, str(out), max_frames=25)).run()
    assert report.stats["policy"] == "latest"
    assert report.stats["frames_out"] == 25
    assert probe(out).frames == 25


def test_stop_twice_abandons_queued_frames_but_still_finalizes(tmp_path, test_backend, use_source):
    use_source(ScriptedSource([(64, 48)] * 1000, interval=0.002))
    out = tmp_path / "o.ts"
    pipeline = Pipeline(config(test_backend, str(out)))
    threading.Timer(0.5, lambda: (pipeline.stop(interrupted=True), pipeline.stop())).start()
    report = pipeline.run()
    assert report.exit_code == 130 and report.interrupted
    assert 0 < probe(out).frames < 1000


class NoisySource(ScriptedSource):
    """ScriptedSource with noisy pictures (a denoiser has something to do), every frame
    different, so that frames delivered out of order or twice would show."""

    def frames(self, stop: threading.Event):
        rng = np.random.default_rng(3)
        for frame in super().frames(stop):
            h, w = frame.image.shape[:2]
            ramp = np.linspace(40, 200, w, dtype=np.float32)[None, :, None]
            noisy = ramp + frame.seq * 3 + rng.normal(0, 20, (h, w, 3))
            frame.image = np.clip(noisy, 0, 255).astype(np.uint8)
            yield frame


def test_frames_in_flight_reach_the_outputs_in_order_and_match_one_at_a_time(use_source):
    """A per-frame model on OpenVINO overlaps two frames on two cores; what comes out —
    order, content, count at max_frames, across a size change — is what one-at-a-time
    denoising gives."""
    pytest.importorskip("openvino")
    from streamdenoise.backends import create_backend

    sizes = [(96, 64)] * 7 + [(64, 48)] * 7
    overlapping = create_backend("openvino", model="fast", threads=2)
    assert overlapping.frames_in_flight == 2
    got: list[Frame] = []

    def collect(frame: Frame) -> None:
        got.append(frame)

    use_source(NoisySource(sizes))
    cfg = PipelineConfig(source="scripted", outputs=[collect], status=False, max_frames=12,
                         policy="lossless")  # fmt: skip
    report = Pipeline(cfg, backend=overlapping).run()
    assert report.exit_code == 0 and report.stats["frames_out"] == 12
    assert [f.seq for f in got] == list(range(12))
    overlapped = [
        b.seq for a, b in itertools.pairwise(got) if b.marks["dequeued"] < a.marks["denoised"]
    ]
    assert overlapped, "no frame was submitted before the previous one finished"

    reference = create_backend("openvino", model="fast", threads=1)
    assert reference.frames_in_flight == 1
    want = list(NoisySource(sizes).frames(threading.Event()))[:12]
    try:
        for frame, source_frame in zip(got, want, strict=True):
            if source_frame.discontinuity:
                reference.reset()
            expected = reference.process(source_frame.image)
            assert np.array_equal(frame.image, expected), frame.seq
    finally:
        reference.close()


def _two_pass_reference(sizes: list[tuple[int, int]], count: int) -> list[np.ndarray]:
    """What two-pass denoising gives for the first ``count`` frames of NoisySource(sizes),
    submitted by hand and flushed at the size change and the end."""
    from streamdenoise.runtime import create_denoiser

    reference = create_denoiser("torch", model="wide-temporal", two_pass=True)
    futures, size = [], None
    try:
        for frame in list(NoisySource(sizes).frames(threading.Event()))[:count]:
            if size not in (None, frame.image.shape):
                reference.reset()  # flushes the frames of the old size
            size = frame.image.shape
            futures.append(reference.submit(frame.image))
        reference.flush()
    finally:
        reference.close()
    return [f.result() for f in futures]


def test_two_pass_frames_reach_the_outputs_in_order_whole_and_as_submitted_by_hand(use_source):
    """Frames leave the two-pass denoiser a window late: the pipeline flushes it at a size
    change and at the end, so every frame comes out, in order, as direct use gives it."""
    sizes = [(96, 64)] * 13 + [(64, 48)] * 6
    got: list[Frame] = []
    use_source(NoisySource(sizes))
    cfg = PipelineConfig(source="scripted", outputs=[got.append], status=False, backend="torch",
                         model="wide-temporal", policy="lossless", two_pass=True)  # fmt: skip
    report = Pipeline(cfg).run()
    assert report.exit_code == 0 and report.stats["frames_out"] == len(sizes)
    assert report.stats["backend"]["two_pass"]
    assert [f.seq for f in got] == list(range(len(sizes)))
    for frame, expected in zip(got, _two_pass_reference(sizes, len(sizes)), strict=True):
        assert np.array_equal(frame.image, expected), frame.seq


def test_two_pass_max_frames_and_a_stop_write_every_frame_taken(use_source):
    got: list[Frame] = []
    use_source(NoisySource([(64, 48)] * 40))
    cfg = PipelineConfig(source="scripted", outputs=[got.append], status=False, max_frames=13,
                         model="wide-temporal", backend="torch", two_pass=True)  # fmt: skip
    report = Pipeline(cfg).run()
    assert report.stats["frames_out"] == 13 and [f.seq for f in got] == list(range(13))

    got.clear()
    use_source(NoisySource([(64, 48)] * 100_000, interval=0.002))
    cfg = PipelineConfig(source="scripted", outputs=[got.append], status=False,
                         model="wide-temporal", backend="torch", two_pass=True)  # fmt: skip
    pipeline = Pipeline(cfg)
    threading.Timer(1.0, lambda: pipeline.stop(interrupted=True)).start()
    report = pipeline.run()
    assert report.interrupted and report.stats["frames_out"] == len(got) > BLOCK + LOOKAHEAD
    assert [f.seq for f in got] == list(range(len(got)))
