"""Shared test helpers: make real media with PyAV, probe outputs, run the real CLI.

Everything here works on real files and real processes (no mocks). Other test modules import
it as ``from helpers import ...`` (``tests/`` is on sys.path through conftest.py).

* :func:`make_clip` writes a deterministic moving, noisy test clip with PyAV.
* :func:`probe` decodes a whole file and returns frame count, size and timestamps.
* :func:`run_cli` / :func:`start_cli` run ``streamdenoise`` as a subprocess, with the test-only
  ``test-blur`` backend registered (so pipeline tests don't depend on any shipped backend).
* :func:`prometheus` runs a real Prometheus (the Debian package) scraping given targets.
* :func:`chromium` runs headless Chromium (the Debian package) on a page.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
TEST_BACKEND = "test-blur"


# -- a test-only backend ---------------------------------------------------------------------
def test_backend_class():
    """A tiny real denoiser (3×3 box blur) for pipeline tests; never shipped."""
    import cv2

    from streamdenoise.backends.base import Denoiser

    class BoxBlurDenoiser(Denoiser):
        name = TEST_BACKEND
        precision = "uint8"

        def __init__(self, **settings) -> None:
            self.settings = settings
            self.prepared: list[tuple[int, int]] = []
            self.resets = 0

        def prepare(self, width: int, height: int) -> None:
            self.prepared.append((width, height))

        def reset(self) -> None:
            self.resets += 1

        def process(self, image: np.ndarray) -> np.ndarray:
            return cv2.blur(image, (3, 3))

    return BoxBlurDenoiser


def register_test_backend() -> None:
    """Make ``--backend test-blur`` resolve in this process."""
    from streamdenoise.backends import BACKENDS

    BACKENDS[TEST_BACKEND] = "helpers:TestBlurDenoiser"


HEAVY_BACKEND = "test-heavy"


def heavy_backend_class():
    """The torch runtime plus ``extra_passes`` more real forward passes of the network per
    frame: a genuinely slower backend (every pass is computed) that a test can load and
    unload while it streams, for ``--model auto``'s adaptation."""
    from streamdenoise.backends.torch_backend import TorchDenoiser

    class HeavyTorchDenoiser(TorchDenoiser):
        # still "torch" to the runtime rules and the reports; registered as HEAVY_BACKEND
        #: Class-wide, so every tier's denoiser carries the same load.
        extra_passes = 0

        def _infer(self, noisy, sigma, prev, flow=None):
            done = 0
            while done < type(self).extra_passes:  # read each pass: unloading ends it at once
                super()._infer(noisy, sigma, prev)
                done += 1
            return super()._infer(noisy, sigma, prev)

    return HeavyTorchDenoiser


def __getattr__(name: str):
    # "helpers:TestBlurDenoiser" is what the backend registry imports; built lazily so that
    # importing helpers stays cheap. The class is made once, so its load setting is shared.
    if name == "TestBlurDenoiser":
        return test_backend_class()
    if name == "HeavyTorchDenoiser":
        globals()[name] = heavy_backend_class()
        return globals()[name]
    raise AttributeError(name)


# -- media -----------------------------------------------------------------------------------
def make_clip(
    path: Path,
    frames: int = 30,
    size: tuple[int, int] = (160, 96),
    fps: int = 25,
    codec: str = "libx264",
    gop: int | None = None,
) -> Path:
    """A deterministic clip: a moving bright square over a gradient, plus noise."""
    import av

    width, height = size
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        for i in range(frames):
            img = np.stack([(xx * 255 // width), (yy * 255 // height), np.full_like(xx, 90)], -1)
            x = (i * 4) % max(width - 16, 1)
            img[10:26, x : x + 16] = 250
            img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass
class Probe:
    frames: int
    width: int
    height: int
    pts_seconds: list[float]
    fps: float | None

    @property
    def duration(self) -> float:
        """First to last frame plus one frame duration (what a player shows)."""
        if not self.pts_seconds:
            return 0.0
        step = 1 / self.fps if self.fps else 0.0
        return self.pts_seconds[-1] - self.pts_seconds[0] + step

    @property
    def monotonic(self) -> bool:
        return all(b > a for a, b in zip(self.pts_seconds, self.pts_seconds[1:], strict=False))


def probe(path: Path, tolerant: bool = False) -> Probe:
    """Decode every frame of ``path`` with PyAV (raises if the file is unplayable).

    ``tolerant=True`` decodes like a player would a file cut short by a kill: a damaged last
    packet or fragment ends decoding instead of raising.
    """
    import av

    pts, size = [], (0, 0)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    if not tolerant:
                        raise
                    continue
                for frame in frames:
                    pts.append(float(frame.pts * frame.time_base))
                    size = (frame.width, frame.height)
        except av.FFmpegError:
            if not tolerant:
                raise
    return Probe(len(pts), size[0], size[1], pts, float(rate) if rate else None)


# -- the CLI as a subprocess -----------------------------------------------------------------
# The CLI module first (as the console script does), then the test backend; a signal while
# the test helpers load is answered the way the CLI answers one during its own imports.
_LAUNCHER = """import sys
sys.path.insert(0, {tests!r})
from streamdenoise.cli import interrupted, main
try:
    import helpers
    helpers.register_test_backend()
except KeyboardInterrupt:
    sys.exit(interrupted())
sys.exit(main())
"""


def cli_command(*args: str) -> list[str]:
    """argv running the real ``streamdenoise`` CLI with the test backend registered."""
    return [sys.executable, "-c", _LAUNCHER.format(tests=str(TESTS_DIR)), *map(str, args)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["COLUMNS"] = "120"  # wide, stable tables in captured output
    return env


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run the CLI to completion; ``.returncode``, ``.stdout``, ``.stderr`` as text."""
    return subprocess.run(
        cli_command(*args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def start_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    """Start the CLI in the background (for signal tests); stdout/stderr are pipes."""
    return subprocess.Popen(
        cli_command(*args),
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` passes;
    an OSError (a server not up yet) counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- HTTP and Prometheus ----------------------------------------------------------------------
def fetch(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium (the Debian package) on a fresh profile with ``args`` (``--dump-dom
    URL``, ``--screenshot=PATH URL``...), given 6 s of page time to run its scripts."""
    import pytest

    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("Debian package chromium is not installed")
    profile = f"--user-data-dir={tmp_path / 'chromium'}"
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            profile, "--virtual-time-budget=6000", *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def prometheus(tmp_path: Path, jobs: str):
    """A real Prometheus on 127.0.0.1 scraping every second with the ``scrape_configs`` entries
    ``jobs`` (YAML); yields ``query(expr) -> result list`` through its HTTP query API."""
    import pytest
    from rtsp_control import free_port

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian package prometheus is not installed")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n" + jobs
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with open(tmp_path / "prometheus.log", "w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1/query?query="

    def query(expr: str) -> list:
        status, body = fetch(api + urllib.parse.quote(expr))
        return json.loads(body)["data"]["result"] if status == 200 else []

    try:
        yield query
    finally:
        process.terminate()
        process.wait(timeout=30)
