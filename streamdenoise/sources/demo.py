"""The built-in ``demo`` source: a deterministic synthetic noisy clip, generated on the fly.

The scene is drawn once (textured background wider than the frame, sprites) and each frame is
a panned crop with the sprites pasted at their positions, plus camera-like noise taken from a
precomputed noise bank at a random offset. That keeps generation to a few array operations per
frame so the demo measures the denoiser, not the generator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from streamdenoise.frame import Frame
from streamdenoise.options import SourceOptions
from streamdenoise.sources.base import Source, SourceState

DEFAULT_SIZE = (1280, 720)
DEFAULT_FPS = 30
DEFAULT_FRAMES = 300
SEED = 20240611
PAN_MARGIN = 0.25  # background is this much wider than the frame, for the slow pan
NOISE_BANKS = 3


@dataclass
class _Sprite:
    image: np.ndarray  # h×w×3 uint8
    mask: np.ndarray  # h×w bool
    path: tuple[float, float, float, float]  # x amplitude, y amplitude, x speed, y speed


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour field + blobs + fine stripes/checks + edges + text: something to denoise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            110 + 70 * np.sin(xx / width * 3.1),
            100 + 60 * np.cos(yy / height * 2.3),
            120 + 50 * np.sin((xx + yy) / (width + height) * 4.0),
        ],
        axis=-1,
    )
    blobs = rng.uniform(-40, 40, size=(max(height // 48, 2), max(width // 48, 2), 3))
    base += cv2.resize(blobs.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img = np.clip(base, 0, 255).astype(np.uint8)
    s = max(height // 72, 2)  # feature scale: ~10 px at 720p
    # Fine textures: stripes, a checkerboard and a brick wall.
    img[height // 10 : height // 3, width // 20 : width // 4] = np.where(
        (xx[: height // 3 - height // 10, : width // 4 - width // 20, None] // s) % 2 == 0, 200, 40
    ).astype(np.uint8)
    check = ((yy // (2 * s) + xx // (2 * s)) % 2 == 0)[..., None]
    region = (slice(height // 2, height * 9 // 10), slice(width // 3, width // 2))
    img[region] = np.where(check[region], (230, 220, 60), (30, 40, 120)).astype(np.uint8)
    bx0, bx1 = width * 3 // 5, width * 19 // 20
    by0, by1 = height // 8, height // 2
    img[by0:by1, bx0:bx1] = (150, 70, 50)
    for row, y in enumerate(range(by0, by1, 3 * s)):
        cv2.line(img, (bx0, y), (bx1, y), (215, 205, 190), max(s // 3, 1))
        offset = (row % 2) * 3 * s
        for x in range(bx0 + offset, bx1, 6 * s):
            cv2.line(img, (x, y), (x, min(y + 3 * s, by1)), (215, 205, 190), max(s // 3, 1))
    # Sharp edges and lettering.
    cv2.rectangle(
        img, (width // 20, height * 2 // 3), (width // 4, height * 9 // 10), (20, 20, 20), -1
    )
    cv2.circle(img, (width * 4 // 5, height * 3 // 4), height // 8, (240, 240, 240), max(s // 2, 1))
    font_scale = height / 720
    for i, text in enumerate(("streamdenoise demo", "fine print 0123456789", "EDGE TEXT")):
        org = (width // 20 + i * width // 5, height // 14 + i * int(40 * font_scale))
        cv2.putText(
            img,
            text,
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            0.9 * font_scale,
            (255, 255, 255),
            max(int(2 * font_scale), 1),
            cv2.LINE_AA,
        )
        cv2.putText(
            img,
            text,
            (org[0], org[1] + height // 2),
            cv2.FONT_HERSHEY_DUPLEX,
            0.6 * font_scale,
            (10, 10, 10),
            1,
            cv2.LINE_AA,
        )
    return img


def _sprites(height: int, rng: np.random.Generator) -> list[_Sprite]:
    """A shaded ball, a labelled card and a checker tile, each on its own looping path."""
    r = max(height // 10, 4)
    yy, xx = np.mgrid[-r:r, -r:r].astype(np.float32)
    dist = np.sqrt(xx**2 + yy**2) / r
    shade = np.clip(1.2 - np.sqrt((xx + r / 3) ** 2 + (yy + r / 3) ** 2) / r, 0.2, 1.0)
    ball = (shade[..., None] * np.array([240, 80, 40], np.float32)).astype(np.uint8)
    card = np.full((r, 2 * r, 3), (40, 160, 230), np.uint8)
    cv2.rectangle(card, (0, 0), (2 * r - 1, r - 1), (255, 255, 255), max(r // 20, 1))
    cv2.putText(
        card,
        "CAR 42",
        (r // 8, r * 2 // 3),
        cv2.FONT_HERSHEY_SIMPLEX,
        r / 60,
        (0, 0, 0),
        max(r // 30, 1),
        cv2.LINE_AA,
    )
    ty, tx = np.mgrid[0:r, 0:r]
    tile = np.where(
        (((ty // (r // 6 + 1)) + (tx // (r // 6 + 1))) % 2 == 0)[..., None],
        (250, 250, 250),
        (0, 0, 0),
    ).astype(np.uint8)
    return [
        _Sprite(ball, dist <= 1.0, (0.35, 0.25, 0.9, 1.3)),
        _Sprite(card, np.ones(card.shape[:2], bool), (0.4, 0.1, 0.5, 0.7)),
        _Sprite(tile, np.ones(tile.shape[:2], bool), (0.15, 0.3, 1.7, 0.6)),
    ]


def _noise_bank(width: int, height: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Unit-variance noise ×16 as int8: white per-channel noise plus blotchy chroma noise."""
    banks = []
    h, w = height + height // 8, width + width // 8
    for _ in range(NOISE_BANKS):
        white = rng.standard_normal((h, w, 3), dtype=np.float32)
        low = rng.standard_normal((h // 4 + 1, w // 4 + 1, 3), dtype=np.float32)
        chroma = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        chroma -= chroma.mean(axis=2, keepdims=True)  # colour shifts only, not brightness
        total = (white + 0.8 * chroma) / np.sqrt(1 + 0.8**2 * 0.5)
        banks.append(np.clip(total * 16, -127, 127).astype(np.int8))
    return banks


def _sigma_lut() -> np.ndarray:
    """Poisson-Gaussian noise σ (in 1/4 pixel units) as a function of the clean value."""
    v = np.arange(256, dtype=np.float32) / 255.0
    sigma = np.sqrt(0.012 * v + 0.07**2) * 255  # ≈18 in the shadows, ≈30 in highlights
    return np.round(sigma * 4).astype(np.int16)


class DemoClip:
    """Deterministic frame generator (also used by tests and benchmarks without a pipeline)."""

    def __init__(self, width: int, height: int, fps: float = DEFAULT_FPS, seed: int = SEED):
        self.width, self.height, self.fps = width, height, fps
        rng = np.random.default_rng(seed)
        self._rng = rng
        self._pan = int(width * PAN_MARGIN)
        self._background = _background(width + self._pan, height, rng)
        self._sprites = _sprites(height, rng)
        self._banks = _noise_bank(width, height, rng)
        self._lut = _sigma_lut()

    def clean(self, index: int) -> np.ndarray:
        t = index / self.fps
        x0 = int(self._pan * 0.5 * (1 - np.cos(t * 2 * np.pi / 20)))  # 20 s back-and-forth pan
        frame = self._background[:, x0 : x0 + self.width].copy()
        for sprite in self._sprites:
            ax, ay, sx, sy = sprite.path
            h, w = sprite.mask.shape
            x = int((self.width - w) * (0.5 + ax * np.sin(t * sx)))
            y = int((self.height - h) * (0.5 + ay * np.sin(t * sy + 1.0)))
            region = frame[y : y + h, x : x + w]
            region[sprite.mask] = sprite.image[sprite.mask]
        cv2.putText(
            frame,
            f"frame {index:05d}",
            (self.width // 20, self.height * 19 // 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            self.height / 720,
            (255, 255, 0),
            2,
            cv2.LINE_AA,
        )
        return frame

    def noisy(self, index: int, clean: np.ndarray | None = None) -> np.ndarray:
        clean = self.clean(index) if clean is None else clean
        rng = np.random.default_rng((SEED, index))
        bank = self._banks[index % NOISE_BANKS]
        oy = int(rng.integers(0, bank.shape[0] - self.height + 1))
        ox = int(rng.integers(0, bank.shape[1] - self.width + 1))
        unit = bank[oy : oy + self.height, ox : ox + self.width]
        noise = (unit.astype(np.int16) * self._lut[clean]) >> 6  # (16·n)·(4·σ)/64 = n·σ
        return np.clip(noise + clean, 0, 255).astype(np.uint8)


class DemoSource(Source):
    """``demo``: 1280×720 at 30 fps, 300 frames (10 s) unless asked for more or to loop."""

    def __init__(self, options: SourceOptions, frames: int = DEFAULT_FRAMES) -> None:
        super().__init__()
        self.options = options
        self.length = frames
        self.fps = float(options.fps or DEFAULT_FPS)
        self._clip: DemoClip | None = None

    def ensure_length(self, frames: int) -> None:
        """Generate at least ``frames`` frames (``--max-frames`` beyond the default 10 s)."""
        self.length = max(self.length, frames)

    def open(self) -> None:
        width, height = self.options.size or DEFAULT_SIZE
        self._clip = DemoClip(width, height, self.fps)
        self.frame_size = (width, height)
        self.state = SourceState.LIVE

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        assert self._clip is not None, "open() first"
        time_base = Fraction(1, 1) / Fraction(self.fps).limit_denominator(1001)
        start = time.monotonic()
        index = 0
        while not stop.is_set() and (self.options.loop or index < self.length):
            if self.options.realtime:
                delay = start + index / self.fps - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
            yield Frame(self._clip.noisy(index), seq=index, pts=index, time_base=time_base)
            index += 1
        self.state = SourceState.ENDED

    def describe(self) -> str:
        width, height = self.options.size or DEFAULT_SIZE
        return f"demo {width}x{height}@{self.fps:g}"
