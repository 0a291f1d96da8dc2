"""The HTTP MJPEG preview, fetched with urllib from 127.0.0.1 while a real run streams."""

from __future__ import annotations

import json
import urllib.request

import pytest

from streamdenoise.errors import SinkError
from streamdenoise.options import SinkOptions
from streamdenoise.sinks.preview import BOUNDARY, PreviewSink


def fetch(url: str, timeout: float = 5):
    return urllib.request.urlopen(url, timeout=timeout)


def read_parts(response, count: int) -> list[bytes]:
    """The first ``count`` JPEGs of a multipart/x-mixed-replace stream."""
    parts = []
    while len(parts) < count:
        line = response.readline()
        if line.strip() != f"--{BOUNDARY}".encode():
            continue
        headers = {}
        while (line := response.readline().strip()) != b"":
            key, value = line.decode().split(":", 1)
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        parts.append(response.read(int(headers["content-length"])))
    return parts


@pytest.mark.slow
def test_preview_serves_page_stats_and_mjpeg(demo_preview):
    import cv2
    import numpy as np

    base = demo_preview
    page = fetch(base).read().decode()
    assert "stream.mjpg" in page and "stats" in page
    with fetch(base + "stream.mjpg") as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        parts = read_parts(stream, 3)
    image = cv2.imdecode(np.frombuffer(parts[-1], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 640, 3)  # --compare: noisy | denoised
    stats = json.loads(fetch(base + "stats").read())
    assert stats["size"] == "320x240"
    # (the server counts a part once its write returned: the third may still be in flight)
    assert stats["preview"]["jpeg_frames_served"] >= 2
    assert stats["pipeline"]["frames_out"] >= 3
    with pytest.raises(urllib.error.HTTPError):
        fetch(base + "nothing-here")


def test_port_in_use_is_a_clear_error(unused_port):
    first = PreviewSink(f"http://127.0.0.1:{unused_port}/", SinkOptions())
    try:
        with pytest.raises(SinkError, match="cannot serve the preview"):
            PreviewSink(f"http://127.0.0.1:{unused_port}/", SinkOptions())
    finally:
        first.close()
