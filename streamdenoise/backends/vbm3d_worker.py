"""V-BM3D worker: runs VapourSynth's ``bm3dcpu`` plugin for :class:`VBM3DDenoiser`.

A separate process because VapourSynth's wheels need another Python than the package may
run on (CPython ≥ 3.12, R75–R79 for the plugin's API 3). This file imports only numpy and
vapoursynth, so any interpreter that has those two can run it by path.

Protocol on stdin/stdout: one JSON line of settings, then per frame H×W×3 float32 RGB on
[0, 1] in, the denoised frame in the same layout out. ``--check`` prints nothing and exits
0 when the plugin loads, else prints one line saying what is missing and exits 1.
"""

from __future__ import annotations

import json
import sys
from collections import deque

import numpy as np

# Orthonormal opponent colour transform: luma carries the block matching for all three
# planes (the plugin's ``chroma`` mode, as in CBM3D), and white noise keeps its σ in every
# plane, so one σ serves all planes.
OPPONENT = np.array(
    [
        [1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
        [1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)],
        [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)],
    ],
    np.float32,
)


def check() -> str | None:
    try:
        import vapoursynth as vs
    except ImportError as err:
        return f"no vapoursynth module in {sys.executable} ({err})"
    if not hasattr(vs.core, "bm3dcpu"):
        return f"VapourSynth {vs.__version__} in {sys.executable} did not load the bm3dcpu plugin"
    return None


class Worker:
    """Causal V-BM3D: the clip handed to the plugin ends at the current frame."""

    def __init__(self, settings: dict) -> None:
        import vapoursynth as vs

        self.vs = vs
        self.core = vs.core
        self.core.num_threads = int(settings.get("threads") or 1)
        self.width, self.height = int(settings["width"]), int(settings["height"])
        self.sigma = float(settings["sigma"])
        self.radius = int(settings.get("radius", 1))
        self.options = {
            "block_step": int(settings.get("block_step", 8)),
            "bm_range": int(settings.get("bm_range", 9)),
            "ps_num": int(settings.get("ps_num", 2)),
            "ps_range": int(settings.get("ps_range", 4)),
        }
        self.final = bool(settings.get("final", 1))
        self.history: deque[np.ndarray] = deque(maxlen=self.radius + 1)

    def _clip(self, planes: list[np.ndarray]):
        blank = self.core.std.BlankClip(
            format=self.vs.YUV444PS, width=self.width, height=self.height, length=len(planes)
        )

        def fill(n: int, f):
            out = f.copy()
            for p in range(3):
                np.asarray(out[p])[:] = planes[n][p]
            return out

        return self.core.std.ModifyFrame(blank, blank, fill)

    def process(self, rgb: np.ndarray) -> np.ndarray:
        opp = np.einsum("ij,hwj->ihw", OPPONENT, rgb).astype(np.float32)
        self.history.append(np.ascontiguousarray(opp))
        clip = self._clip(list(self.history))
        # Frames past the end of the clip are clamped to it, so the window reaches only
        # into the past: radius r uses the r previous frames and the current one.
        sigma = [self.sigma] * 3
        common = {"sigma": sigma, "radius": self.radius, "chroma": 1, **self.options}
        basic = self.core.bm3dcpu.BM3Dv2(clip, **common)
        out = self.core.bm3dcpu.BM3Dv2(clip, ref=basic, **common) if self.final else basic
        frame = out.get_frame(len(self.history) - 1)
        planes = np.stack([np.asarray(frame[p]) for p in range(3)])
        return np.einsum("ji,jhw->hwi", OPPONENT, planes).astype(np.float32)


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        reason = check()
        if reason:
            print(reason)
        return 1 if reason else 0
    settings = json.loads(sys.stdin.buffer.readline())
    worker = Worker(settings)
    size = worker.width * worker.height * 3 * 4
    while True:
        data = sys.stdin.buffer.read(size)
        if len(data) < size:
            return 0
        rgb = np.frombuffer(data, np.float32).reshape(worker.height, worker.width, 3)
        sys.stdout.buffer.write(worker.process(rgb).tobytes())
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    sys.exit(main())
