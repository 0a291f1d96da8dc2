"""A hostile user's cases against ``run``: each is a real run (real media, real sockets, real
signals, a real full disk) checked for one clear line, the right exit code, honest stats and
no file left behind that does not play."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from helpers import make_clip, probe, run_cli, start_cli
from rtsp_control import free_port

pytestmark = pytest.mark.slow
FAST = ("--backend", "identity", "--size", "320x180")


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@contextlib.contextmanager
def refused_port():
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- 1. an output that never delivered a frame is an error ---------------------------------------
@pytest.mark.parametrize("frames", [5, 30])
def test_restream_with_a_bad_port_is_a_usage_error(tmp_path, frames):
    stats = tmp_path / "s.json"
    result = run_cli(
        "run", "demo", "-o", "rtsp://127.0.0.1:99999/x", *FAST, "--max-frames", frames,
        "--stats-json", stats,
    )  # fmt: skip
    assert result.returncode == 2
    assert "port must be 1-65535" in one_line(result.stderr)
    assert not stats.exists()  # refused before anything ran


@pytest.mark.parametrize("scheme", ["rtsp", "rtmp"])
def test_restream_that_cannot_connect_fails_the_run(tmp_path, scheme):
    stats = tmp_path / "s.json"
    with refused_port() as port:
        url = f"{scheme}://127.0.0.1:{port}/live/stream"
        result = run_cli("run", "demo", "-o", url, *FAST, "--max-frames", "5", "-q",
                         "--stats-json", stats)  # fmt: skip
    assert result.returncode == 1
    assert "no frame delivered" in one_line(result.stderr)
    report = json.loads(stats.read_text())
    assert report["error"] and "no frame delivered" in report["error"]
    (sink,) = report["sinks"].values()
    assert sink["frames_written"] == 0 and sink["error"]


# -- 2. secrets never leave the process -----------------------------------------------------------
def test_no_secret_in_stderr_stats_or_file_names(tmp_path):
    stats = tmp_path / "s.json"
    with refused_port() as port:
        source = f"rtsp://user:SECRET@PW@127.0.0.1:{port}/x?auth=AUTHSECRET&apikey=APIKEYSECRET"
        result = run_cli("run", source, "--backend", "identity", "--timeout", "2",
                         "--stats-json", stats, cwd=tmp_path)  # fmt: skip
        assert result.returncode == 1 and "connection refused" in one_line(result.stderr)
        out = run_cli(
            "run", "demo", *FAST, "--max-frames", "5", "--stats-json", stats,
            "-o", f"rtmp://127.0.0.1:{port}/live/STREAMKEY",
            "-o", f"srt://127.0.0.1:{port}?passphrase=PASSPHRASE1&streamid=publish:a:u:STREAMID",
        )  # fmt: skip
    text = result.stderr + out.stderr + out.stdout + stats.read_text()
    for secret in ("SECRET", "PW@", "AUTHSECRET", "APIKEYSECRET", "STREAMKEY", "PASSPHRASE1",
                   "STREAMID"):  # fmt: skip
        assert secret not in text
    assert not list(tmp_path.glob("*.mp4"))  # the source never opened: no output file


def test_default_output_name_has_no_stream_key():
    from streamdenoise.settings import default_output

    assert default_output("rtmp://host:1935/live/STREAMKEY") == "host_1935_live_denoised.mp4"
    assert "pw" not in default_output("rtsp://u:pw@cam/ch1?token=x")


def test_a_bug_traceback_in_a_thread_is_redacted(capsys):
    from streamdenoise.cli import _thread_bug

    previous, threading.excepthook = threading.excepthook, _thread_bug
    try:
        thread = threading.Thread(target=_raise, args=("rtsp://a:TOPSECRET@h/",))
        thread.start()
        thread.join()
    finally:
        threading.excepthook = previous
    err = capsys.readouterr().err
    assert "Traceback" in err and "TOPSECRET" not in err and "rtsp://***@h/" in err


def _raise(message: str):
    raise RuntimeError(message)


# -- 3. the preview: disconnecting clients, bad ports, exposure -----------------------------------
def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # up (it answered, if only with 401)
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "preview not up"
            time.sleep(0.1)


def test_preview_clients_that_vanish_print_nothing(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    proc = start_cli("run", "demo", "-o", base, *FAST, "--loop", "--realtime", "-q")
    try:
        _wait_http(base, proc)
        for i in range(50):  # half-open: ask, then reset the connection mid-answer
            sock = socket.create_connection(("127.0.0.1", port))
            path = "/stream.mjpg" if i % 2 else "/"
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            sock.close()
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert one_line(stderr) == "streamdenoise: interrupted; outputs finalized"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-o", "http://127.0.0.1:99999/"), "port must be 1-65535"),
        (("-o", "http://127.0.0.1:8080/", "--bind", "0.0.0.0"), "--token"),
        (("-o", "http://127.0.0.1:8080/", "--bind", "0.0.0.0", "--token", "short"), "16"),
    ],
)
def test_preview_setup_mistakes_are_one_line(args, message):
    result = run_cli("run", "demo", *args, *FAST)
    assert result.returncode == 2
    assert message in one_line(result.stderr)


def test_preview_with_a_token_lets_only_its_holders_in():
    port, token = free_port(), "s3cret-token-4242"
    base = f"http://127.0.0.1:{port}/"
    proc = start_cli("run", "demo", "-o", base, *FAST, "--loop", "--realtime", "-q",
                     "--token", token)  # fmt: skip
    try:
        _wait_http(base, proc)
        for path in ("", "stats", "stream.mjpg"):
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(base + path, timeout=5)
            assert denied.value.code == 401
        page = urllib.request.urlopen(f"{base}?token={token}", timeout=5).read().decode()
        assert "stream.mjpg" in page

        def with_header(value: str) -> urllib.request.Request:
            return urllib.request.Request(base + "stats", headers={"Authorization": value})

        bearer = with_header(f"Bearer {token}")
        assert json.loads(urllib.request.urlopen(bearer, timeout=5).read())["preview"]
        wrong = with_header("Bearer nope1234")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=5)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert token not in stderr


# -- 4. a signal at any moment ---------------------------------------------------------------------
def _launch(*args: str) -> subprocess.Popen:
    """The CLI as an interactive shell starts it: SIGINT at its default (a shell's background
    jobs ignore it, which would hide what Ctrl+C does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamdenoise", *args],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.fixture(scope="module")
def startup_s() -> float:
    """How long this interpreter takes to reach the program's first line here, now: before
    that, a signal meets CPython's own startup (site imports), not the program."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.monotonic() - started)
    return max(times)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("after_s", [0.05, 0.3, 1.0, 2.5])
def test_a_signal_at_any_moment_is_one_line_and_130(tmp_path, startup_s, sig, after_s):
    outs = [tmp_path / "a.mp4", tmp_path / "b.mkv"]
    proc = _launch("run", "demo", *FAST, "--loop", "-o", outs[0], "-o", outs[1], "-q")
    try:
        time.sleep(startup_s + after_s)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert one_line(stderr).startswith("streamdenoise: interrupted")
    for out in outs:
        if out.exists():  # stopped before the first frame: no file at all is right too
            assert probe(out).frames > 0, out


SWALLOWED_THEN_RUN = """
import signal, sys, weakref
from streamdenoise import cli, interrupts
interrupts.install()
class Thing: pass
def callback(_ref):  # CPython ignores what a weakref callback raises, as an import's lock does
    signal.raise_signal(signal.SIGTERM)
    for _ in range(1000): pass
thing = Thing()
ref = weakref.ref(thing, callback)
del thing
cli.leave(cli.main(sys.argv[1:]))
"""


def test_a_signal_that_python_swallowed_still_stops_the_run(tmp_path):
    """A Ctrl+C at the wrong moment of an import once left a ``--loop`` run going forever."""
    out = tmp_path / "a.mp4"
    command = [sys.executable, "-c", SWALLOWED_THEN_RUN, "run", "demo", *FAST, "--loop",
               "-o", str(out), "-q"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130
    assert one_line(done.stderr) == "streamdenoise: interrupted; outputs finalized"
    assert not out.exists() or probe(out).frames > 0


def test_a_signal_that_python_swallowed_still_stops_the_service(tmp_path):
    config = tmp_path / "site.yaml"
    camera = "{source: demo, loop: true, backend: identity, outputs: ['null']}"
    config.write_text(f"http: {{port: {free_port()}}}\ncameras:\n  door: {camera}\n")
    command = [sys.executable, "-c", SWALLOWED_THEN_RUN, "serve", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "streamdenoise: stopped; outputs finalized"


# -- 5. counts that tell the truth -----------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A real 400 KiB filesystem (tmpfs) that fills up; skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_disk_full_is_reported_when_it_happens_and_counted_honestly(small_disk, tmp_path, suffix):
    out, stats = small_disk / f"o{suffix}", tmp_path / "s.json"
    result = run_cli("run", "demo", *FAST, "--loop", "--gop", "10", "--max-frames", "600",
                     "-o", out, "--stats-json", stats, "-q")  # fmt: skip
    assert result.returncode == 1
    assert "No space left on device" in one_line(result.stderr)
    report = json.loads(stats.read_text())
    sink = report["sinks"][str(out)]
    assert sink["frames_written"] == probe(out, tolerant=True).frames > 0
    assert sink["frames_encoded"] < 600  # seen while writing, not only at the end


def test_stats_json_on_a_full_disk_is_one_line(small_disk):
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as filler:
        while True:
            filler.write(bytes(64 * 1024))
    stats = small_disk / "s.json"
    result = run_cli("run", "demo", *FAST, "--max-frames", "3", "-o", "null",
                     "--stats-json", stats, "-q")  # fmt: skip
    assert result.returncode == 1
    assert "cannot write --stats-json" in one_line(result.stderr)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # nothing half-written


# -- 6. output failures: one line, no empty file ---------------------------------------------------
def test_a_source_too_small_to_encode_leaves_no_file(tmp_path):
    tiny = make_clip(tmp_path / "tiny.mkv", frames=5, size=(1, 1), codec="ffv1")
    out = tmp_path / "out.mp4"
    result = run_cli("run", tiny, "-o", out, "--backend", "identity", "-q")
    assert result.returncode == 1
    assert "cannot encode 1x1 frames" in one_line(result.stderr)
    assert not out.exists()


def test_an_existing_output_is_never_overwritten_without_y(tmp_path, clip):
    out = tmp_path / "rec.mkv"
    first = run_cli("run", clip, "-o", out, "--backend", "identity", "-q")
    assert first.returncode == 0
    before = out.read_bytes()
    again = run_cli("run", clip, "-o", out, "--backend", "identity", "-q")  # a restart
    assert again.returncode == 1 and "-y/--overwrite" in one_line(again.stderr)
    assert out.read_bytes() == before
    forced = run_cli("run", clip, "-o", out, "--backend", "identity", "--max-frames", "7", "-y")
    assert forced.returncode == 0 and probe(out).frames == 7


# -- 7. UDP restream: the promised packet size ----------------------------------------------------
def test_udp_restream_uses_1316_byte_packets():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    sizes: list[int] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                sizes.append(len(receiver.recv(65536)))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    url = f"udp://127.0.0.1:{receiver.getsockname()[1]}"
    result = run_cli("run", "demo", "-o", url, *FAST, "--realtime", "--duration", "2")
    done.set()
    thread.join(timeout=5)
    receiver.close()
    assert result.returncode == 0, result.stderr
    assert "options were not used" not in result.stderr
    # whole TS packets, 7 to a datagram at most (FFmpeg's UDP default, 1472, splits them)
    assert len(sizes) > 20 and max(sizes) == 1316, sizes[:20]
    assert all(size % 188 == 0 for size in sizes)
