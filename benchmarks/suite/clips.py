"""Benchmark inputs: noisy H.264 clips at each size and a tiny dataset for --quick.

The end-to-end clips start from a real camera clip in ``shared/datasets/media/clips``,
resized and given AWGN by the project's own noise synthesis, then encoded with x264 so the
pipeline decodes a realistic compressed, noisy stream.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import torch

from streamdenoise.models.noise import add_awgn, quantize

CLIP_FPS = 30
CLIP_NOISE_SIGMA = 15.0
#: What an IP camera's main stream typically spends on 1280×720 at 30 fps, bits/s; other
#: sizes scale with the pixel count (1080p: 9 Mbit/s). A camera's encoder runs at a capped
#: bitrate: the same noise at CRF 18 costs ~75 Mbit/s at 720p, which is a decoding stress
#: test (about 46 ms of one core per frame), not a camera.
CAMERA_BITRATE_720P = 4_000_000


def add_noise(image: np.ndarray, sigma255: float, seed: int) -> np.ndarray:
    """AWGN of std ``sigma255`` (8-bit scale) on an RGB uint8 frame, clipped and quantized."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(image).float() / 255
    noisy = quantize(add_awgn(x, torch.tensor(sigma255 / 255), gen))
    return (noisy * 255).round().to(torch.uint8).numpy()


def read_frames(path: Path, size: tuple[int, int], count: int):
    """Yield up to ``count`` RGB frames of ``path`` resized to ``size``, looping the clip."""
    produced = 0
    while produced < count:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="rgb24")
                if (image.shape[1], image.shape[0]) != size:
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                yield image
                produced += 1
                if produced >= count:
                    return


def camera_bitrate(size: tuple[int, int]) -> int:
    return round(CAMERA_BITRATE_720P * size[0] * size[1] / (1280 * 720))


def make_noisy_clip(
    source: Path,
    dest: Path,
    size: tuple[int, int],
    frames: int,
    bitrate: int | None = None,
    fps: int = CLIP_FPS,
) -> Path:
    """Write ``frames`` noisy frames of ``source`` at ``size`` as an H.264 MP4 of ``fps``
    frames per second (cached): at CRF 18, or capped at ``bitrate`` bits/s the way a camera's
    encoder is."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if bitrate:
            stream.bit_rate = bitrate
            rate = str(bitrate)
            stream.options = {"preset": "veryfast", "bf": "0", "maxrate": rate, "bufsize": rate}
        else:
            stream.options = {"crf": "18", "preset": "ultrafast", "bf": "0"}
        for i, image in enumerate(read_frames(source, size, frames)):
            noisy = add_noise(image, CLIP_NOISE_SIGMA, seed=i)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(noisy, format="rgb24")))
        out.mux(stream.encode(None))
    tmp.replace(dest)
    return dest


def make_tiny_sequences(sources: list[Path], dest: Path, width: int, frames: int) -> Path:
    """Downscaled copies of clean frame folders (for --quick): dest/<name>/00000.png …"""
    for folder in sources:
        out = dest / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(sorted(folder.iterdir())[:frames]):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            height = round(image.shape[0] * width / image.shape[1] / 2) * 2
            small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(out / f"{i:05d}.png"), small)
    return dest
