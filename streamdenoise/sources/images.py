"""A folder of still images played as a video, in natural file-name order, at 25 fps."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2

from streamdenoise.errors import SourceError
from streamdenoise.frame import Frame
from streamdenoise.options import SourceOptions
from streamdenoise.sources.base import Source, SourceState

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
FOLDER_FPS = 25


def natural_key(path: Path) -> list:
    """Sort key that puts frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource(Source):
    def __init__(self, folder: str | Path, options: SourceOptions) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.options = options
        self.fps = float(options.fps or FOLDER_FPS)
        self._files: list[Path] = []

    def open(self) -> None:
        self._files = sorted(
            (
                p
                for p in self.folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            ),
            key=natural_key,
        )
        if not self._files:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {self.folder}")
        self.state = SourceState.LIVE

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        time_base = 1 / Fraction(self.fps).limit_denominator(1001)
        seq = 0
        unreadable: list[Path] = []
        for path in self._files:
            if stop.is_set():
                break
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                unreadable.append(path)
                continue
            if self.options.size and (bgr.shape[1], bgr.shape[0]) != self.options.size:
                bgr = cv2.resize(bgr, self.options.size, interpolation=cv2.INTER_AREA)
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), seq=seq, pts=seq, time_base=time_base)
            seq += 1
        if seq == 0 and not stop.is_set():
            self.state = SourceState.FAILED
            raise SourceError(f"none of the images in {self.folder} could be read")
        if unreadable:  # one line for all of them, not one per file
            log.warning("skipped %d unreadable image(s), first %s", len(unreadable), unreadable[0])
        self.state = SourceState.ENDED

    def describe(self) -> str:
        return f"{self.folder}/ ({len(self._files)} images)"
