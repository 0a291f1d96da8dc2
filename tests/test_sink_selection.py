"""Output string -> sink kind, and the sinks opened for local outputs."""

from __future__ import annotations

import pytest

from streamdenoise.errors import SinkError, UsageError
from streamdenoise.options import SinkOptions
from streamdenoise.sinks import open_sink, sink_kind


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("out.mp4", "file"),
        ("dir/OUT.MKV", "file"),
        ("x.ts", "file"),
        ("clip.mov", "file"),
        ("display", "display"),
        ("null", "null"),
        ("rtsp://127.0.0.1:8554/live", "restream"),
        ("rtsps://cam.example/live", "restream"),
        ("rtmp://server/app/key", "restream"),
        ("udp://127.0.0.1:5000", "restream"),
        ("srt://127.0.0.1:9000", "restream"),
        ("http://127.0.0.1:8080", "preview"),
        ("http://0.0.0.0:8080/", "preview"),
    ],
)
def test_kind(spec, kind):
    assert sink_kind(spec) == kind


@pytest.mark.parametrize("spec", ["out.avi", "out", "foo://x", "ftp://h/x.mp4", "Display", ""])
def test_unsupported_output_is_a_usage_error_listing_choices(spec):
    with pytest.raises(UsageError) as err:
        sink_kind(spec)
    assert ".mp4" in str(err.value) and "rtsp://" in str(err.value)


def test_usage_error_redacts_credentials():
    with pytest.raises(UsageError) as err:
        sink_kind("ftp://user:secret@host/x")
    assert "secret" not in str(err.value)


def test_local_sinks(tmp_path):
    from streamdenoise.sinks.file import FileSink
    from streamdenoise.sinks.null import NullSink

    sink = open_sink(str(tmp_path / "a.mkv"), SinkOptions())
    assert isinstance(sink, FileSink) and sink.lossless
    assert isinstance(open_sink("null", SinkOptions()), NullSink)


def test_file_in_missing_folder_is_a_sink_error(tmp_path):
    with pytest.raises(SinkError, match="does not exist"):
        open_sink(str(tmp_path / "nope" / "a.mp4"), SinkOptions())


def test_display_without_gui_is_a_clear_error():
    from streamdenoise.sinks.display import gui_unavailable_reason

    reason = gui_unavailable_reason()
    if reason is None:
        pytest.skip("this machine has an OpenCV GUI and a display")
    with pytest.raises(SinkError, match="display"):
        open_sink("display", SinkOptions())


def test_compare_view_puts_noisy_left_and_denoised_right():
    import numpy as np

    from streamdenoise.frame import Frame
    from streamdenoise.sinks.display import side_by_side

    noisy = np.zeros((4, 6, 3), np.uint8)
    clean = np.full((4, 6, 3), 255, np.uint8)
    view = side_by_side(Frame(clean, seq=0, original=noisy))
    assert view.shape == (4, 12, 3)
    assert (view[:, :6] == 0).all() and (view[:, 6:] == 255).all()
    assert side_by_side(Frame(clean, seq=0)) is clean  # nothing to compare with


def test_frames_reach_x264_as_swscale_would_convert_them():
    """The encoder's own RGB → YUV 4:2:0 conversion (faster than swscale's) gives the same
    planes as FFmpeg's, within a few levels of chroma, on a real camera frame."""
    from pathlib import Path

    import av
    import numpy as np

    from streamdenoise.sinks.video_encoder import rgb_to_yuv420p

    clip = Path(__file__).resolve().parents[2] / "shared/datasets/media/clips/01_dog.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    with av.open(str(clip)) as container:
        image = next(container.decode(video=0)).to_ndarray(width=640, height=360, format="rgb24")
    ffmpeg = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(640, 360, "yuv420p")
    want = ffmpeg.to_ndarray().astype(int)
    got = rgb_to_yuv420p(image).astype(int)
    assert got.shape == want.shape == (540, 640)
    luma, chroma = np.abs(got - want)[:360], np.abs(got - want)[360:]
    assert luma.max() <= 1
    assert chroma.max() <= 8 and chroma.mean() < 0.5
