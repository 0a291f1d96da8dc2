"""Training and validation data: clean clips cut from image and video folders.

Everything is loaded into RAM once as uint8 (≈1 GB for ../shared/datasets) so that drawing a
batch costs milliseconds and never competes with the training step for the two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from streamdenoise.errors import UserError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TRAIN_IMAGE_DIRS = ("train/images/cbsd432", "train/images/wiki")
TRAIN_VIDEOS = "train/videos"
VAL_VIDEO_DIRS = ("val/videos/vid4-walk", "val/videos/vid4-city")
VAL_MOTION_DIRS = (
    "val/videos-motion/davis-tennis",
    "val/videos-motion/davis-libby",
    "val/videos-motion/davis-drift-straight",
    "val/videos-motion/davis-motocross-jump",
)
# DAVIS frames carry JPEG block artefacts (some were re-saved near quality 75): shrunk by this
# factor, the blocks fall below a pixel and the targets are clean enough to learn from.
DAVIS_SCALE = 0.75


def train_video_dirs(data_dir: Path) -> list[str]:
    """Every clip folder under ``train/videos``, sorted (the training data list)."""
    root = _require(data_dir, TRAIN_VIDEOS)
    return [f"{TRAIN_VIDEOS}/{p.name}" for p in sorted(root.iterdir()) if p.is_dir()]


def _training_frames(folder: Path) -> np.ndarray:
    frames = np.stack([read_rgb(p) for p in image_files(folder)])
    if not folder.name.startswith("davis-"):
        return frames
    h, w = frames.shape[1:3]
    size = (round(w * DAVIS_SCALE), round(h * DAVIS_SCALE))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise UserError(f"cannot read image {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def _require(data_dir: Path, sub: str) -> Path:
    path = data_dir / sub
    if not path.is_dir():
        raise UserError(f"dataset folder {path} not found (is --data the shared datasets dir?)")
    return path


@dataclass
class ClipSampler:
    """Draws batches of clean clips (N, T, 3, P, P) in [0, 1], deterministically per seed.

    A share ``video_share`` of the clips (half by default) comes from real videos (real motion,
    occlusions); the rest are still images turned into clips by a synthetic camera: static
    (as most surveillance cameras are), integer pans, or sub-pixel pans with a slight zoom.
    Every clip is flipped and transposed at random (all eight orientations): a denoiser has
    no reason to prefer one, and a model trained on four of them gained 0.6 dB on CBSD68
    from averaging its outputs over all eight.
    """

    images: list[np.ndarray]
    videos: list[np.ndarray]
    video_share: float = 0.5

    @classmethod
    def load(cls, data_dir: Path, video_share: float = 0.5) -> ClipSampler:
        images = [read_rgb(p) for d in TRAIN_IMAGE_DIRS for p in image_files(_require(data_dir, d))]
        videos = [_training_frames(data_dir / d) for d in train_video_dirs(data_dir)]
        return cls(images, videos, video_share)

    def _video_clip(self, rng: np.random.Generator, t: int, p: int) -> np.ndarray:
        # videos shorter than a clip are left out; a clip skips every other frame only where
        # the video is long enough for it
        frames = np.array([len(v) if len(v) >= t else 0 for v in self.videos])
        if not frames.any():
            raise UserError(f"no training video has {t} frames: use fewer --frames")
        v = self.videos[rng.choice(len(frames), p=frames / frames.sum())]
        stride = min(int(rng.integers(1, 3)), (len(v) - 1) // max(t - 1, 1))
        start = int(rng.integers(0, len(v) - stride * (t - 1)))
        y, x = int(rng.integers(0, v.shape[1] - p + 1)), int(rng.integers(0, v.shape[2] - p + 1))
        clip = v[start : start + stride * t : stride, y : y + p, x : x + p]
        return clip[::-1] if rng.random() < 0.5 else clip

    def _image_clip(self, rng: np.random.Generator, t: int, p: int) -> np.ndarray:
        img = self.images[int(rng.integers(len(self.images)))]
        h, w = img.shape[:2]
        mode = rng.random()
        if mode < 0.3:  # static camera
            y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
            return np.repeat(img[None, y : y + p, x : x + p], t, axis=0)
        subpixel = mode > 0.65
        vmax = 4.0
        vy, vx = rng.uniform(-vmax, vmax, 2) if subpixel else rng.integers(-3, 4, 2).astype(float)
        zoom = rng.uniform(-0.01, 0.01) if subpixel else 0.0
        y0 = rng.uniform(1 + max(0, -vy) * (t - 1), h - p - 1 - max(0, vy) * (t - 1))
        x0 = rng.uniform(1 + max(0, -vx) * (t - 1), w - p - 1 - max(0, vx) * (t - 1))
        if not subpixel:
            y0, x0 = int(y0), int(x0)
            return np.stack(
                [
                    img[
                        y0 + int(k * vy) : y0 + int(k * vy) + p,
                        x0 + int(k * vx) : x0 + int(k * vx) + p,
                    ]
                    for k in range(t)
                ]
            )
        out = []
        for k in range(t):
            s = 1.0 + zoom * k
            m = np.array([[s, 0, x0 + k * vx], [0, s, y0 + k * vy]], np.float32)
            out.append(
                cv2.warpAffine(
                    img,
                    m,
                    (p, p),
                    flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REFLECT,
                )
            )
        return np.stack(out)

    def batch(self, seed: int, n: int, t: int, p: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        clips = []
        for _ in range(n):
            if rng.random() < self.video_share:
                clip = self._video_clip(rng, t, p)
            else:
                clip = self._image_clip(rng, t, p)
            flip_rows, flip_columns, transpose = rng.random(3) < 0.5
            clip = clip[:, ::-1] if flip_rows else clip
            clip = clip[:, :, ::-1] if flip_columns else clip
            clip = clip.transpose(0, 2, 1, 3) if transpose else clip
            clips.append(np.ascontiguousarray(clip))
        return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255


def load_sequence(folder: Path, max_frames: int | None = None) -> np.ndarray:
    """A clean frame folder as a T×H×W×3 uint8 array."""
    files = image_files(folder)[:max_frames]
    if not files:
        raise UserError(f"no images in {folder}")
    return np.stack([read_rgb(p) for p in files])


def val_clips(
    data_dir: Path, frames: int = 12, size: int = 256, dirs: tuple[str, ...] = VAL_VIDEO_DIRS
) -> torch.Tensor:
    """Centre crops of validation sequences (Vid4 by default), (N, T, 3, S, S) in [0, 1]: S is
    ``size``, or the largest multiple of 16 (what the networks take) that the smallest
    sequence holds."""
    seqs = [load_sequence(_require(data_dir, d), frames) for d in dirs]
    side = min(size, *(min(seq.shape[1:3]) for seq in seqs)) // 16 * 16
    if side < 16:
        raise UserError(f"validation frames under {data_dir} are smaller than 16×16 pixels")
    clips = []
    for seq in seqs:
        h, w = seq.shape[1:3]
        y, x = (h - side) // 2, (w - side) // 2
        clips.append(seq[:, y : y + side, x : x + side])
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255
