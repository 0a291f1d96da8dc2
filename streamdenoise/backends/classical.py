"""Classical denoisers: the baselines a user would otherwise reach for, in the same pipeline.

* ``hqdn3d``     FFmpeg's hqdn3d (spatial + recursive temporal). PyAV's bundled FFmpeg lacks
                 it, so it runs in the system ``ffmpeg`` CLI as a persistent rawvideo filter
                 process.
* ``nlmeans``    FFmpeg's nlmeans (spatial) through PyAV's filter graph.
* ``atadenoise`` FFmpeg's adaptive temporal averaging through PyAV's filter graph, made
                 causal (see :class:`AtadenoiseDenoiser`).
* ``opencv-nlm`` OpenCV's ``fastNlMeansDenoisingColored``.
* ``bm3d``       FFmpeg's bm3d (spatial, per frame) through PyAV's filter graph.
* ``cbm3d``      Colour BM3D from the ``bm3d`` package (spatial, both stages): the reference
                 image denoiser, for quality comparisons (seconds to minutes per frame).
* ``vbm3d``      V-BM3D with a temporal radius into the past, VapourSynth's ``bm3dcpu``
                 plugin in a worker process (:mod:`streamdenoise.backends.vbm3d_worker`).

Parameters are tuned per noise level (the built-in table: a coarse search on a synthetic
textured, moving scene with Gaussian noise). ``classical_presets.json`` next to this module
(written by the evaluation grid search) replaces the built-in table of every backend it
covers. Schema::

    {"<backend>": {"<sigma on the 8-bit scale>": {"<filter option>": value, ...}, ...}, ...}

e.g. ``{"hqdn3d": {"10": {"luma_spatial": 3, "chroma_spatial": 3, "luma_tmp": 4,
"chroma_tmp": 4}, "25": {...}}}``. Option names are the filter's own (FFmpeg option names;
for ``opencv-nlm`` the ``cv2.fastNlMeansDenoisingColored`` argument names). For a requested
σ, float options are interpolated linearly between the two nearest tabulated levels and
integer options come from the nearest level; ``strength`` then scales the strength-like
options (``STRENGTH_KEYS``). When no σ is given, it is estimated from the frame (the first
frame after a reset for the stateful filters, every frame for ``opencv-nlm``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from streamdenoise.backends.base import Denoiser
from streamdenoise.errors import BackendUnavailable

PRESETS_PATH = Path(__file__).with_name("classical_presets.json")

DEFAULT_PRESETS: dict[str, dict[str, dict[str, float | int]]] = {
    "hqdn3d": {
        "5": {"luma_spatial": 4.0, "chroma_spatial": 4.0, "luma_tmp": 6.0, "chroma_tmp": 6.0},
        "15": {"luma_spatial": 14.0, "chroma_spatial": 14.0, "luma_tmp": 20.0, "chroma_tmp": 20.0},
        "30": {"luma_spatial": 36.0, "chroma_spatial": 36.0, "luma_tmp": 48.0, "chroma_tmp": 48.0},
        "50": {"luma_spatial": 60.0, "chroma_spatial": 60.0, "luma_tmp": 80.0, "chroma_tmp": 80.0},
    },
    "nlmeans": {
        "5": {"s": 6.0, "p": 7, "r": 9},
        "15": {"s": 12.0, "p": 7, "r": 9},
        "30": {"s": 24.0, "p": 7, "r": 9},
        "50": {"s": 30.0, "p": 7, "r": 9},
    },
    "atadenoise": {
        "5": {"0a": 0.02, "0b": 0.04, "1a": 0.02, "1b": 0.04, "2a": 0.02, "2b": 0.04, "s": 9},
        "15": {"0a": 0.15, "0b": 0.3, "1a": 0.15, "1b": 0.3, "2a": 0.15, "2b": 0.3, "s": 9},
        "30": {"0a": 0.3, "0b": 0.6, "1a": 0.3, "1b": 0.6, "2a": 0.3, "2b": 0.6, "s": 9},
        "50": {"0a": 0.3, "0b": 0.6, "1a": 0.3, "1b": 0.6, "2a": 0.3, "2b": 0.6, "s": 9},
    },
    "bm3d": {
        "10": {"sigma": 40.0, "group": 1, "bstep": 4},
        "50": {"sigma": 200.0, "group": 1, "bstep": 4},
    },
    # BM3D's parameter is the noise std itself.
    "cbm3d": {"10": {"sigma": 10.0}, "50": {"sigma": 50.0}},
    "vbm3d": {
        "10": {"sigma": 16.0, "radius": 1, "block_step": 3, "bm_range": 16, "final": 1},
        "50": {"sigma": 80.0, "radius": 1, "block_step": 3, "bm_range": 16, "final": 1},
    },
    "opencv-nlm": {
        "5": {"h": 3.0, "hColor": 3.0, "templateWindowSize": 7, "searchWindowSize": 21},
        "15": {"h": 6.0, "hColor": 6.0, "templateWindowSize": 7, "searchWindowSize": 21},
        "30": {"h": 12.0, "hColor": 12.0, "templateWindowSize": 7, "searchWindowSize": 21},
        "50": {"h": 20.0, "hColor": 20.0, "templateWindowSize": 7, "searchWindowSize": 21},
    },
}

# Options that ``strength`` multiplies, with the filter's upper limit where it has one.
STRENGTH_KEYS: dict[str, dict[str, float]] = {
    "hqdn3d": {
        "luma_spatial": 255.0,
        "chroma_spatial": 255.0,
        "luma_tmp": 255.0,
        "chroma_tmp": 255.0,
    },
    "nlmeans": {"s": 30.0},
    "atadenoise": {"0a": 0.3, "1a": 0.3, "2a": 0.3, "0b": 5.0, "1b": 5.0, "2b": 5.0},
    "opencv-nlm": {"h": 1000.0, "hColor": 1000.0},
    "bm3d": {"sigma": 99999.0},
    "cbm3d": {"sigma": 255.0},
    "vbm3d": {"sigma": 255.0},
}


@functools.lru_cache(maxsize=4)
def load_presets(path: Path = PRESETS_PATH) -> dict[str, dict[str, dict[str, Any]]]:
    """The tuned table of each backend the file covers, the built-in table for the rest.

    A backend's tuned levels replace its built-in ones as a whole: mixing levels of two
    different tunings would make the interpolation between them zig-zag.
    """
    presets = {name: dict(levels) for name, levels in DEFAULT_PRESETS.items()}
    if path.exists():
        try:
            tuned = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise BackendUnavailable(f"cannot read {path}: {err}") from err
        for name, levels in tuned.items():
            if name in presets and isinstance(levels, dict) and levels:
                presets[name] = {str(k): dict(v) for k, v in levels.items()}
    return presets


def select_params(
    backend: str, sigma: float, strength: float = 1.0, presets: dict | None = None
) -> dict[str, Any]:
    """Filter options for noise level ``sigma`` (8-bit scale), scaled by ``strength``."""
    table = (presets or load_presets())[backend]
    levels = sorted(table.items(), key=lambda kv: float(kv[0]))
    sigmas = np.array([float(k) for k, _ in levels])
    nearest = levels[int(np.argmin(np.abs(sigmas - sigma)))][1]
    params: dict[str, Any] = {}
    for key, value in nearest.items():
        if isinstance(value, float):
            column = [float(p.get(key, value)) for _, p in levels]
            value = float(np.interp(sigma, sigmas, column))
        params[key] = value
    for key, limit in STRENGTH_KEYS[backend].items():
        if key in params:
            params[key] = min(float(params[key]) * strength, limit)
    return params


def estimate_sigma(image: np.ndarray) -> float:
    """Mean per-channel noise std on the 8-bit scale (the networks' estimator)."""
    from streamdenoise.models.noise import estimate_noise_sigma

    return float(np.mean(estimate_noise_sigma(image)))


def filter_args(params: dict[str, Any]) -> str:
    """FFmpeg filter argument string ``k=v:k=v`` from an options dict."""
    return ":".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def stop_worker(proc: subprocess.Popen | None, stderr: IO | None, timeout: float) -> None:
    """End a filter's worker process: close its input so it finishes, wait ``timeout``
    seconds (then kill it), and close its output and the file its stderr went to."""
    if proc is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if stderr is not None:
        stderr.close()


class _ClassicalDenoiser(Denoiser):
    """Shared constructor: σ hint → tuned parameters, strength, CPU only."""

    name = "?"

    def __init__(
        self,
        model: str | None = None,
        precision: str | None = None,
        strength: float = 1.0,
        device: str | None = None,
        sigma: float | None = None,
        threads: int | None = None,  # accepted for a uniform interface; filters pick their own
    ) -> None:
        if precision not in (None, "fp32", "uint8"):
            raise BackendUnavailable(f"backend {self.name!r} runs in 8-bit only, not {precision}")
        if device not in (None, "auto", "cpu"):
            raise BackendUnavailable(f"backend {self.name!r} runs on the CPU only, not {device}")
        self.strength = float(strength)
        self.sigma = sigma
        self.precision = "uint8"
        self.params: dict[str, Any] | None = None

    def _params_for(self, image: np.ndarray) -> dict[str, Any]:
        sigma = self.sigma if self.sigma is not None else estimate_sigma(image)
        return select_params(self.name, sigma, self.strength)

    def describe(self) -> dict:
        info = super().describe()
        info.update(sigma=self.sigma, strength=self.strength, params=self.params)
        return info


class OpenCVNlmDenoiser(_ClassicalDenoiser):
    """OpenCV's colour non-local means; stateless, so σ is re-estimated every frame."""

    name = "opencv-nlm"

    def process(self, image: np.ndarray) -> np.ndarray:
        import cv2

        self.params = self._params_for(image)
        p = self.params
        return cv2.fastNlMeansDenoisingColored(
            np.ascontiguousarray(image),
            None,
            float(p["h"]),
            float(p["hColor"]),
            int(p["templateWindowSize"]),
            int(p["searchWindowSize"]),
        )


def run_filter_graph(
    filter_name: str, args: str, frames: list[np.ndarray], flush: bool = True
) -> list[np.ndarray]:
    """Push ``frames`` through buffer → gbrp → filter → rgb24 → buffersink.

    gbrp is planar RGB: the filters support it, and unlike YUV it round-trips losslessly.
    ``flush`` ends the stream (a temporal filter then emits what it holds back); without it
    only the outputs the filter has released so far come back.
    """
    import av
    import av.filter

    height, width = frames[0].shape[:2]
    graph = av.filter.Graph()
    chain = [
        graph.add_buffer(width=width, height=height, format="rgb24", time_base=Fraction(1, 30)),
        graph.add("format", "gbrp"),
        graph.add(filter_name, args),
        graph.add("format", "rgb24"),
        graph.add("buffersink"),
    ]
    for upstream, downstream in itertools.pairwise(chain):
        upstream.link_to(downstream)
    graph.configure()
    for pts, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = pts
        graph.push(frame)
    if flush:
        graph.push(None)
    out = []
    while True:
        try:
            out.append(np.ascontiguousarray(graph.pull().to_ndarray()))
        except (av.error.EOFError, av.error.BlockingIOError):
            return out


class NlmeansDenoiser(_ClassicalDenoiser):
    """FFmpeg nlmeans (spatial only) through PyAV."""

    name = "nlmeans"

    def process(self, image: np.ndarray) -> np.ndarray:
        if self.params is None:
            self.params = self._params_for(image)
        return run_filter_graph("nlmeans", filter_args(self.params), [image])[-1]

    def reset(self) -> None:
        self.params = None


def mirrored_window(history: list[np.ndarray], reach: int) -> list[np.ndarray]:
    """``2·reach + 1`` frames centred on the newest one of ``history``, past frames mirrored
    into the future: p_k … p_1, current, p_1 … p_k (the oldest frame repeats while the history
    is short, as FFmpeg pads the start of a stream)."""
    current, past = history[-1], history[-2::-1]
    side = [past[min(j, len(past) - 1)] if past else current for j in range(reach)]
    return [*side[::-1], current, *side]


class AtadenoiseDenoiser(_ClassicalDenoiser):
    """FFmpeg atadenoise through PyAV, made causal so output i is aligned with input i.

    atadenoise averages a window of ``s`` frames centred on the output frame, walking out
    from the centre in both directions while each frame stays within its thresholds, so
    streaming it would delay every frame by ``s // 2``. Instead each call filters a window
    whose future half mirrors the past half (:func:`mirrored_window`): the walk then accepts
    the same past frames on both sides, which is a causal average of the current frame with
    each accepted past frame weighted twice. Only the centre frame is filtered (the
    ``enable`` timeline option; one extra frame pushes it out without ending the stream).

    Ending the stream instead would not give a causal filter: FFmpeg fills a finished
    stream's missing future with earlier frames of its queue, which outvote the newest one.
    """

    name = "atadenoise"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history: deque[np.ndarray] = deque()

    def process(self, image: np.ndarray) -> np.ndarray:
        if self.params is None:
            self.params = self._params_for(image)
            self.history = deque(maxlen=int(self.params.get("s", 9)) // 2 + 1)
        if self.history and self.history[-1].shape != image.shape:
            self.history.clear()
        self.history.append(image)
        reach = int(self.params.get("s", 9)) // 2
        window = mirrored_window(list(self.history), reach)
        # The filter releases output i when input i + reach + 1 arrives (frame number n).
        args = f"{filter_args(self.params)}:enable=eq(n,{len(window)})"
        return run_filter_graph("atadenoise", args, [*window, image], flush=False)[reach]

    def reset(self) -> None:
        self.params = None
        self.history.clear()


def _ffmpeg_cli() -> str | None:
    return shutil.which("ffmpeg")


class Hqdn3dDenoiser(_ClassicalDenoiser):
    """FFmpeg hqdn3d in a persistent ``ffmpeg`` CLI process (rawvideo in, rawvideo out).

    The CLI holds back one or two frames before emitting them, so each real frame is
    followed by ``FILLERS`` pass-through filler frames: only every ``FILLERS + 1``-th frame
    number is filtered (hqdn3d's ``enable`` timeline option), so fillers never touch the
    temporal state, and they push the real frame out at once. Output order is strict: the
    reply for a real frame comes after the previous call's fillers. A reader thread drains
    stdout continuously, so neither side can block the other.
    """

    name = "hqdn3d"
    timeout_s = 30.0
    FILLERS = 3

    @classmethod
    def unavailable_reason(cls) -> str | None:
        exe = _ffmpeg_cli()
        if exe is None:
            return "no ffmpeg command found (install it, e.g. apt-get install ffmpeg)"
        try:
            probe = subprocess.run(
                [exe, "-hide_banner", "-h", "filter=hqdn3d"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"cannot run {exe}: {err}"
        if "hqdn3d AVOptions" not in probe.stdout:
            return f"{exe} has no hqdn3d filter (install a full FFmpeg build)"
        return None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._proc: subprocess.Popen | None = None
        self._replies: queue.Queue[bytes | None] = queue.Queue()
        self._stderr = None
        self._shape: tuple[int, ...] | None = None
        self._filler = b""
        self._pending_fillers = 0

    def _start(self, image: np.ndarray) -> None:
        self.params = self._params_for(image)
        height, width = image.shape[:2]
        vf = f"format=gbrp,hqdn3d={filter_args(self.params)}"
        vf += f":enable='not(mod(n\\,{self.FILLERS + 1}))',format=rgb24"
        raw = ["-f", "rawvideo", "-pix_fmt", "rgb24"]
        cmd = [_ffmpeg_cli() or "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
        cmd += [*raw, "-s", f"{width}x{height}", "-r", "30", "-i", "-", "-vf", vf]
        cmd += ["-fps_mode", "passthrough", "-flush_packets", "1", *raw, "-"]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._shape = image.shape
        self._filler = bytes(image.nbytes)
        self._pending_fillers = 0
        self._replies = queue.Queue()
        threading.Thread(
            target=self._read_replies,
            args=(self._proc, image.nbytes, self._replies),
            name="hqdn3d-reader",
            daemon=True,
        ).start()

    @staticmethod
    def _read_replies(proc: subprocess.Popen, size: int, replies: queue.Queue) -> None:
        while True:
            data = proc.stdout.read(size)
            if len(data) < size:
                replies.put(None)
                return
            replies.put(data)

    def _reply(self) -> bytes:
        try:
            data = self._replies.get(timeout=self.timeout_s)
        except queue.Empty:
            data = None
        if data is None:
            raise BackendUnavailable(f"hqdn3d: ffmpeg stopped: {self._error_text()}")
        return data

    def _error_text(self) -> str:
        if self._stderr is None:
            return "not started"
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "no output within the timeout"

    def process(self, image: np.ndarray) -> np.ndarray:
        if self._proc is None or image.shape != self._shape:
            self.close()
            self._start(image)
        try:
            self._proc.stdin.write(np.ascontiguousarray(image).data)
            for _ in range(self.FILLERS):
                self._proc.stdin.write(self._filler)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as err:
            raise BackendUnavailable(f"hqdn3d: ffmpeg stopped: {self._error_text()}") from err
        for _ in range(self._pending_fillers):
            self._reply()
        self._pending_fillers = self.FILLERS
        return np.frombuffer(self._reply(), np.uint8).reshape(image.shape).copy()

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc, self._shape = self._proc, None, None
        stop_worker(proc, self._stderr, timeout=5)
        self._stderr = None


class BM3DFilterDenoiser(_ClassicalDenoiser):
    """FFmpeg's bm3d through PyAV, one frame at a time (it is a spatial filter).

    Its ``sigma`` is not on the noise's scale, and the tuned setting uses no block grouping
    (``group=1``), which makes it a sliding-window DCT shrinkage: docs/baselines.md says why.
    """

    name = "bm3d"

    def process(self, image: np.ndarray) -> np.ndarray:
        if self.params is None:
            self.params = self._params_for(image)
        return run_filter_graph("bm3d", filter_args(self.params), [image])[-1]

    def reset(self) -> None:
        self.params = None


def _to_8bit(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


class CBM3DDenoiser(_ClassicalDenoiser):
    """Colour BM3D: ``bm3d.bm3d`` (hard thresholding then Wiener) on the orthonormal opponent
    colour planes, block matching on luma, as CBM3D does.

    The package's own ``bm3d_rgb`` rescales each opponent plane by its range, which divides
    by zero on a grey frame; the orthonormal transform keeps the noise σ in every plane
    instead. Spatial and stateless, and far too slow for video: it is the quality reference
    an image-processing reader expects, given the true σ (docs/baselines.md).
    """

    name = "cbm3d"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import bm3d  # noqa: F401
        except ImportError:
            return "needs the bm3d package (pip install bm3d; non-commercial licence)"
        return None

    def process(self, image: np.ndarray) -> np.ndarray:
        return _to_8bit(self.process_float(image.astype(np.float32) / 255))

    def process_float(self, image: np.ndarray) -> np.ndarray:
        """Float RGB on [0, 1] (unclipped noise allowed) in and out."""
        import bm3d

        from streamdenoise.backends.vbm3d_worker import OPPONENT

        if self.params is None:
            self.params = self._params_for(_to_8bit(image))
        opponent = np.einsum("ij,hwj->hwi", OPPONENT, image)
        clean = bm3d.bm3d(opponent, float(self.params["sigma"]) / 255)
        return np.einsum("ji,hwj->hwi", OPPONENT, clean).astype(np.float32)

    def reset(self) -> None:
        self.params = None


VAPOURSYNTH_PYTHON_ENV = "STREAMDENOISE_VAPOURSYNTH_PYTHON"
VBM3D_WORKER = Path(__file__).with_name("vbm3d_worker.py")


def vapoursynth_python() -> str:
    """The interpreter that runs the V-BM3D worker: $STREAMDENOISE_VAPOURSYNTH_PYTHON or this
    one. VapourSynth's wheels need CPython ≥ 3.12, so a 3.10/3.11 install points there."""
    return os.environ.get(VAPOURSYNTH_PYTHON_ENV) or sys.executable


@functools.lru_cache(maxsize=4)
def _vbm3d_check(python: str) -> str | None:
    try:
        probe = subprocess.run(
            [python, str(VBM3D_WORKER), "--check"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run {python}: {err}"
    if probe.returncode == 0:
        return None
    why = (probe.stdout.strip() or probe.stderr.strip() or "failed").splitlines()[-1]
    return (
        f"{why}; install 'vapoursynth>=75,<80' and vapoursynth-bm3dcpu (CPython ≥ 3.12) and "
        f"point {VAPOURSYNTH_PYTHON_ENV} at that interpreter"
    )


class VBM3DDenoiser(_ClassicalDenoiser):
    """V-BM3D (bm3dcpu ``BM3Dv2``, basic + final stage) with a temporal radius into the past.

    The worker keeps the last ``radius`` frames and hands the plugin a clip that ends at the
    current frame, so block matching reaches only into the past: a causal filter with no
    delay, as the pipeline needs. One worker process per stream; ``reset`` restarts it.
    """

    name = "vbm3d"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return _vbm3d_check(vapoursynth_python())

    def __init__(self, *args: Any, threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads = threads
        self._proc: subprocess.Popen | None = None
        self._shape: tuple[int, ...] | None = None
        self._stderr = None

    def _start(self, image: np.ndarray) -> None:
        self.params = self._params_for(_to_8bit(image))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        height, width = image.shape[:2]
        settings = {**self.params, "width": width, "height": height, "threads": self.threads}
        self._proc = subprocess.Popen(
            [vapoursynth_python(), str(VBM3D_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._proc.stdin.write(json.dumps(settings).encode() + b"\n")
        self._shape = image.shape

    def process(self, image: np.ndarray) -> np.ndarray:
        return _to_8bit(self.process_float(image.astype(np.float32) / 255))

    def process_float(self, image: np.ndarray) -> np.ndarray:
        """Float RGB on [0, 1] (unclipped noise allowed) in and out."""
        if self._proc is None or image.shape != self._shape:
            self.close()
            self._start(image)
        data = np.ascontiguousarray(image, np.float32)
        try:
            self._proc.stdin.write(data.tobytes())
            self._proc.stdin.flush()
            reply = self._proc.stdout.read(data.nbytes)
        except (BrokenPipeError, OSError):
            reply = b""
        if len(reply) < data.nbytes:
            why = self._error_text()
            self.close()
            raise BackendUnavailable(f"vbm3d: the VapourSynth worker stopped: {why}")
        return np.frombuffer(reply, np.float32).reshape(image.shape).copy()

    def _error_text(self) -> str:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip()
        return text.splitlines()[-1] if text else "no output"

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc, self._shape = self._proc, None, None
        stop_worker(proc, self._stderr, timeout=10)
        self._stderr = None
