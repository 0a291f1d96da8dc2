"""H.264 encoding of pipeline frames into any PyAV output container (file or network).

Shared by the file sink and the restream sink, so it knows nothing about the container: the
caller opens it (``av.open(target, "w", format=..., options=...)``), hands it here, and closes
it after :meth:`VideoEncoder.flush`.
"""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np

from streamdenoise.frame import Frame
from streamdenoise.options import SinkOptions
from streamdenoise.settings import X264_PRESETS, resolve_preset

#: Encoder time base: fine enough to keep any source timestamp to within 11 µs.
TIME_BASE = Fraction(1, 90_000)
#: The preset of a live output (restreams): the cheapest, so a viewer waits on nothing.
LIVE_PRESET = X264_PRESETS[0]


def rgb_to_yuv420p(image: np.ndarray) -> np.ndarray:
    """Even-sized H×W×3 RGB → planar YUV 4:2:0 (BT.601, limited range) as x264 takes it, each
    chroma sample the mean of its 2×2 block, as swscale makes it (within a few levels) in
    half its time (``benchmarks/results/conversion_cost.md``)."""
    height, width = image.shape[:2]
    planes = cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)  # chroma: one pixel of each block
    half = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    blocks = cv2.resize(half, (width, height), interpolation=cv2.INTER_NEAREST)
    planes[height:] = cv2.cvtColor(blocks, cv2.COLOR_RGB2YUV_I420)[height:]
    return planes


class VideoEncoder:
    """Adds one libx264 stream to ``container`` and encodes RGB frames into it.

    Usage::

        container = av.open("out.mkv", "w")
        encoder = VideoEncoder(container, width, height, fps, SinkOptions(), zerolatency=False)
        for frame in frames:               # streamdenoise.frame.Frame, RGB uint8
            encoder.encode(frame)
        encoder.flush()                    # drain delayed packets, then:
        container.close()

    * ``width``/``height`` are rounded down to even numbers (yuv420p); frames of another size
      (a source that changed resolution) are scaled to the stream's size.
    * Timestamps: output PTS = source PTS in seconds minus the first frame's, on a 1/90000
      time base; frames without PTS use ``seq / fps``. PTS are forced strictly increasing, so
      a source that jumps back (reconnect, loop) never produces an invalid stream.
    * ``options``: ``bitrate`` (bits/s; else CRF ``crf``), ``gop`` (else about 2 s), ``preset``.
    * ``zerolatency=True`` (live pushing): preset ultrafast, tune zerolatency, no B-frames,
      so every packet leaves the encoder as soon as its frame goes in.
    * ``b_frames=False``: no B-frames. Containers without edit lists (fragmented MP4,
      MPEG-TS) otherwise shift every timestamp by the B-frame delay (two frames).
    """

    def __init__(
        self,
        container: av.container.OutputContainer,
        width: int,
        height: int,
        fps: float | None,
        options: SinkOptions,
        zerolatency: bool = False,
        b_frames: bool = True,
    ) -> None:
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.width, self.height = width - width % 2, height - height % 2
        if self.width < 2 or self.height < 2:
            raise ValueError(f"frame size {width}x{height} is too small to encode")
        self._container = container
        rate = Fraction(self.fps).limit_denominator(1001)
        self.stream = container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = TIME_BASE
        codec = self.stream.codec_context
        codec.time_base = TIME_BASE
        codec.gop_size = options.gop or max(round(self.fps * 2), 1)
        x264 = {"preset": LIVE_PRESET if zerolatency else resolve_preset(options.preset)}
        if zerolatency:
            x264["tune"] = "zerolatency"
        if zerolatency or not b_frames:
            codec.max_b_frames = 0
        if options.bitrate:
            codec.bit_rate = int(options.bitrate)
        else:
            x264["crf"] = str(options.crf)
        codec.options = x264
        self._first_seconds: float | None = None
        #: Source time of the last frame encoded.
        self.last_s: float | None = None
        self._last_pts = -1
        self.frames_encoded = 0
        #: Packets the container accepted: frames still inside the encoder do not count.
        self.packets_muxed = 0

    @property
    def origin_s(self) -> float | None:
        """Source time of the first frame (the output's zero), once one was encoded."""
        return self._first_seconds

    def _pts(self, frame: Frame) -> int:
        seconds = frame.pts_seconds
        if seconds is None:
            seconds = frame.seq / self.fps
        if self._first_seconds is None:
            self._first_seconds = seconds
        self.last_s = seconds
        pts = round((seconds - self._first_seconds) / TIME_BASE)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        return pts

    def encode(self, frame: Frame) -> None:
        """Encode one frame and mux whatever packets the encoder releases."""
        image = np.ascontiguousarray(frame.image)
        if image.shape[:2] != (self.height, self.width):
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        video_frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
        video_frame.pts = self._pts(frame)
        video_frame.time_base = TIME_BASE
        self._mux(self.stream.encode(video_frame))
        self.frames_encoded += 1

    def flush(self) -> None:
        """Drain frames the encoder still holds (B-frames, lookahead) into the container."""
        self._mux(self.stream.encode(None))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)
            self.packets_muxed += 1
