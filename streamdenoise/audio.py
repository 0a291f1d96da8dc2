"""Audio passthrough: the source's first audio stream, copied (or re-encoded to AAC where the
output container cannot hold it) into file and restream outputs, in sync with the video.

The video is late by the pipeline's latency (queues, denoiser, encoder); the audio is not
denoised, so it is held back by exactly that much: each output keeps the audio packets in an
:class:`AudioBuffer` and muxes them only once the video frame with the same timestamp is in
(:meth:`AudioWriter.catch_up`). Both streams carry the source's own timestamps measured
from the first video frame, so players line them up sample-exactly whatever the latency was.

Flow: the source demuxes audio packets and calls :meth:`AudioTrack.push` with each packet's
time in seconds (on the video's timeline); every output subscribed to the track gets its own
bounded buffer, so a slow or reconnecting output never holds the others up.
"""

from __future__ import annotations

import collections
import io
import threading
from fractions import Fraction
from typing import TYPE_CHECKING

# OpenCV before PyAV, always: both wheels bundle X11 client libraries under the same names
# (libxcb-shm, libxcb-shape, libxcb-xfixes); whichever is loaded first serves both, and
# OpenCV's Qt window hangs for good on PyAV's copies. This module is the pipeline's first
# import of av (through the Sink base class), so the order is settled here.
# isort: off
import cv2  # noqa: F401
import av

# isort: on

if TYPE_CHECKING:
    from streamdenoise.sinks.video_encoder import VideoEncoder


#: Audio held per output while the video catches up; more than any pipeline latency.
BUFFER_S = 20.0
#: Audio codecs each output container stores as they are (else: AAC). Matroska takes all.
COPYABLE: dict[str, tuple[str, ...] | None] = {
    "matroska": None,
    "mp4": ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"),
    "mov": ("aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le"),
    "mpegts": ("aac", "mp3", "mp2", "ac3", "eac3", "opus"),
    "flv": ("aac", "mp3"),
    "rtsp": ("aac", "opus", "pcm_mulaw", "pcm_alaw"),
}
AAC_BITRATE = 128_000
#: AAC's channel layouts by channel count, for sources that give a count without an order.
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 8: "7.1"}


def aac_layout(layout: av.AudioLayout) -> str:
    """A layout the AAC encoder takes: the source's own if it names one, else the standard
    one for that many channels ("1 channels" from raw PCM is refused), else stereo."""
    if layout.name in _AAC_LAYOUTS.values():
        return layout.name
    return _AAC_LAYOUTS.get(layout.nb_channels, "stereo")


class AudioBuffer:
    """One output's queue of (seconds, packet bytes), oldest first; drops the oldest when
    full. Bytes, not packets: each output muxes its own copy with its own timestamps."""

    def __init__(self) -> None:
        self._items: collections.deque[tuple[float, bytes]] = collections.deque()
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, seconds: float, data: bytes) -> None:
        with self._lock:
            self._items.append((seconds, data))
            while self._items and seconds - self._items[0][0] > BUFFER_S:
                self._items.popleft()
                self.dropped += 1

    def take_until(self, seconds: float) -> list[tuple[float, bytes]]:
        """Every packet that starts at or before ``seconds``."""
        with self._lock:
            out = []
            while self._items and self._items[0][0] <= seconds:
                out.append(self._items.popleft())
            return out


class AudioTrack:
    """The source's audio stream and the outputs listening to it."""

    def __init__(self, stream: av.audio.stream.AudioStream) -> None:
        # The parameters are copied into a stream of our own (in a container that is never
        # written): a network source closes its input on every reconnect, and an output that
        # connects later must still be able to copy them.
        self._holder = av.open(io.BytesIO(), "w", format="matroska")
        self.stream = self._holder.add_stream_from_template(stream)
        source = stream.codec_context
        self.codec = source.name
        self.sample_rate = source.sample_rate or 48_000
        self.layout = source.layout
        self.extradata = source.extradata
        self._buffers: list[AudioBuffer] = []
        self._lock = threading.Lock()

    def subscribe(self) -> AudioBuffer:
        buffer = AudioBuffer()
        with self._lock:
            self._buffers.append(buffer)
        return buffer

    def push(self, seconds: float, packet: av.Packet) -> None:
        """Called by the source for each demuxed packet, ``seconds`` on the video's clock."""
        if not packet.size:
            return  # the demuxer's end-of-stream flush packet
        data = bytes(packet)
        with self._lock:
            buffers = list(self._buffers)
        for buffer in buffers:
            buffer.put(seconds, data)

    def describe(self) -> str:
        return f"{self.codec} {self.sample_rate} Hz {self.layout.name}"


class AudioWriter:
    """Adds the audio stream to one output container, next to ``video``'s stream, and muxes
    from the output's buffer whatever the video has caught up with.

    Made right after the video encoder (before anything is muxed: the container's header
    lists both streams); :meth:`catch_up` after each video frame, :meth:`finish` at the end.
    """

    def __init__(
        self,
        container: av.container.OutputContainer,
        track: AudioTrack,
        buffer: AudioBuffer,
        video: VideoEncoder,
    ) -> None:
        self._container = container
        self._buffer = buffer
        self._video = video
        self._codec = track.codec
        allowed = COPYABLE.get(container.format.name.split(",")[0], ())
        self.copy = allowed is None or track.codec in allowed
        if self.copy:
            self.stream = container.add_stream_from_template(track.stream)
            self._decoder = None
        else:  # PyAV's encoder converts to AAC's sample format and frame size itself
            self.stream = container.add_stream("aac", rate=track.sample_rate)
            self.stream.codec_context.layout = aac_layout(track.layout)
            self.stream.codec_context.bit_rate = AAC_BITRATE
            self._decoder = av.CodecContext.create(track.codec, "r")
            self._decoder.sample_rate = track.sample_rate
            self._decoder.layout = track.layout
            if track.extradata:
                self._decoder.extradata = track.extradata
        self._rate = track.sample_rate
        self._last_pts = -1
        self.packets = 0

    def catch_up(self) -> None:
        """Mux the audio up to the last video frame encoded (on the source's clock)."""
        if self._video.last_s is not None:
            self._write_until(self._video.last_s)

    def finish(self) -> None:
        """The audio under the last video frame, then what the AAC encoder still holds."""
        if self._video.last_s is not None:
            self._write_until(self._video.last_s + 1 / self._video.fps)
        if self._decoder is not None:
            for packet in self.stream.encode(None):
                self._container.mux(packet)

    def stats(self) -> dict:
        how = f"copy {self._codec}" if self.copy else f"{self._codec} -> aac"
        return {"mode": how, "packets": self.packets, "dropped": self._buffer.dropped}

    def _write_until(self, seconds: float) -> None:
        origin = self._video.origin_s
        for at, data in self._buffer.take_until(seconds):
            if at < origin:
                continue  # before the first video frame: the output starts with the picture
            if self.copy:
                self._mux_copy(data, at - origin)
            else:
                self._transcode(data, at - origin)

    def _ticks(self, seconds: float) -> int:
        """``seconds`` in samples (the time base used here), never going back."""
        pts = max(round(seconds * self._rate), self._last_pts + 1)
        self._last_pts = pts
        return pts

    def _mux_copy(self, data: bytes, seconds: float) -> None:
        packet = av.Packet(data)
        packet.stream = self.stream
        packet.pts = packet.dts = self._ticks(seconds)
        packet.time_base = Fraction(1, self._rate)  # PyAV rescales to the muxer's time base
        self._container.mux(packet)
        self.packets += 1

    def _transcode(self, data: bytes, seconds: float) -> None:
        try:
            frames = self._decoder.decode(av.Packet(data))
        except av.InvalidDataError:
            return  # one damaged audio packet: a click, not a reason to stop the output
        for frame in frames:
            frame.pts, frame.time_base = self._ticks(seconds), Fraction(1, self._rate)
            self._last_pts += frame.samples - 1
            seconds += frame.samples / self._rate
            for out in self.stream.encode(frame):
                self._container.mux(out)
                self.packets += 1
