"""The Python API: frames(), frames_async(), Denoiser and callables as outputs."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest

import streamdenoise
from streamdenoise.errors import UserError

SMALL = (96, 64)


def test_frames_yields_denoised_numpy_frames_with_timestamps(test_backend):
    got = list(
        streamdenoise.frames(
            "demo", backend=test_backend, size=SMALL, max_frames=6, keep_noisy=True
        )
    )
    assert [f.index for f in got] == list(range(6))
    assert all(f.image.shape == (64, 96, 3) and f.image.dtype == np.uint8 for f in got)
    stamps = [f.timestamp for f in got]
    assert stamps == sorted(stamps) and stamps[1] > stamps[0] == 0
    assert got[0].noisy is not None and not np.array_equal(got[0].noisy, got[0].image)


def test_leaving_the_loop_early_stops_the_pipeline_and_finalizes_outputs(tmp_path, test_backend):
    out = tmp_path / "copy.mp4"
    before = threading.active_count()
    for frame in streamdenoise.frames(
        "demo", backend=test_backend, size=SMALL, loop=True, outputs=[str(out)]
    ):
        if frame.index == 4:
            break
    assert threading.active_count() <= before
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 5


def test_setup_errors_surface_at_the_first_frame(tmp_path):
    with pytest.raises(UserError):
        next(streamdenoise.frames(str(tmp_path / "missing.mp4")))


def test_any_callable_is_an_output(test_backend):
    seen = []
    config = streamdenoise.PipelineConfig(
        "demo", outputs=[seen.append, "null"], backend=test_backend, max_frames=3, status=False
    )
    config.source_options.size = SMALL
    report = streamdenoise.Pipeline(config).run()
    assert [f.seq for f in seen] == [0, 1, 2]
    assert report.stats["sinks"]["list.append"]["calls"] == 3


def test_async_iteration_leaves_the_event_loop_free(test_backend):
    async def main() -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        count = 0
        async for _ in streamdenoise.frames_async(
            "demo", backend=test_backend, size=SMALL, max_frames=5
        ):
            count += 1
        task.cancel()
        return count, ticks

    count, ticks = asyncio.run(main())
    assert count == 5 and ticks > count


def test_denoiser_keeps_state_per_stream_until_reset():
    frames = [f.image for f in streamdenoise.frames("demo", backend="identity", size=SMALL,
                                                     max_frames=3)]  # fmt: skip
    with streamdenoise.Denoiser(model="temporal", precision="fp32", device="cpu") as denoiser:
        assert denoiser.info["temporal"] is True
        first = [denoiser(f) for f in frames]
        denoiser.reset()
        again = [denoiser(f) for f in frames]
        denoiser.reset()
        alone = denoiser(frames[1])  # no history: not what it made after frames[0]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(alone, first[1])
    assert not np.array_equal(first[0], frames[0])
    with pytest.raises(ValueError, match="uint8"):
        streamdenoise.Denoiser("identity")(np.zeros((4, 4), np.float32))


def test_two_pass_frames_arrive_all_and_in_order(clip):
    got = list(streamdenoise.frames(str(clip), backend="torch", two_pass=True))
    assert [f.index for f in got] == list(range(30))
    assert all(f.image.shape == (96, 160, 3) for f in got)
