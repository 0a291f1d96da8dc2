"""Pictures a reader can judge by eye: a labelled crop grid and a side-by-side MP4."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np

LABEL_LINE = 15
TILE_GAP = 4


def label_tile(image: np.ndarray, text: str, rows: int = 1) -> np.ndarray:
    """The RGB image with a black caption bar above it (one line per ``\\n``)."""
    lines = text.split("\n")
    bar = np.zeros((LABEL_LINE * max(rows, len(lines)) + 4, image.shape[1], 3), np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            bar,
            line,
            (3, LABEL_LINE * (i + 1) - 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return np.vstack([bar, image])


def hstack(tiles: Sequence[np.ndarray]) -> np.ndarray:
    gap = np.full((tiles[0].shape[0], TILE_GAP, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for tile in tiles:
        parts += [tile, gap]
    return np.hstack(parts[:-1])


def crop_box(height: int, width: int, size: int) -> tuple[slice, slice]:
    """A centred square crop of ``size`` (clamped to the frame)."""
    size = min(size, height, width)
    top, left = (height - size) // 2, (width - size) // 2
    return slice(top, top + size), slice(left, left + size)


def comparison_grid(rows: list[list[tuple[str, np.ndarray]]], path: Path) -> Path:
    """One row per noise setting of (caption, image) tiles; saved as PNG."""
    width = max(len(tiles) for tiles in rows)
    caption_rows = max(caption.count("\n") + 1 for tiles in rows for caption, _ in tiles)
    lines = []
    for tiles in rows:
        labelled = [label_tile(image, caption, caption_rows) for caption, image in tiles]
        blank = np.full_like(labelled[0], 255)
        labelled += [blank] * (width - len(labelled))
        lines.append(hstack(labelled))
    gap = np.full((TILE_GAP * 2, lines[0].shape[1], 3), 255, np.uint8)
    grid = np.vstack([part for line in lines for part in (line, gap)][:-1])
    cv2.imwrite(str(path), grid[:, :, ::-1])
    return path


def side_by_side_video(
    panels: list[tuple[str, list[np.ndarray]]],
    path: Path,
    fps: int,
    scale: float = 0.5,
    crf: int = 30,
) -> Path:
    """Labelled panels side by side, H.264, small enough to commit (``scale``, ``crf``)."""
    count = min(len(frames) for _, frames in panels)
    with av.open(str(path), "w") as out:
        stream = None
        for i in range(count):
            tiles = []
            for name, frames in panels:
                frame = frames[i]
                size = (int(frame.shape[1] * scale) // 2 * 2, int(frame.shape[0] * scale) // 2 * 2)
                tiles.append(
                    label_tile(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), name)
                )
            image = hstack(tiles)
            image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
            if stream is None:
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height = image.shape[1], image.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "medium"}
            out.mux(
                stream.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                )
            )
        if stream is not None:
            out.mux(stream.encode(None))
    return path
