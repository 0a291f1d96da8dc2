"""``streamdenoise serve`` without a camera server: config checks, the stateless batched
denoiser, segmented recordings and retention, the HTTP token, reload, signals.

Every test runs the real CLI (or the real classes) on real media written by PyAV.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import struct
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from helpers import chromium, make_clip, probe, prometheus, run_cli, start_cli, wait_for
from rtsp_control import free_port

from streamdenoise.auto import calibration as cal
from streamdenoise.auto.calibration import CalibrationCache
from streamdenoise.backends.neural import StreamState
from streamdenoise.backends.torch_backend import TorchDenoiser
from streamdenoise.frame import Frame
from streamdenoise.frame_queue import FrameQueue
from streamdenoise.models.tiers import shipped_ladder
from streamdenoise.options import SinkOptions
from streamdenoise.serve.config import RecordConfig, parse_bytes, parse_duration
from streamdenoise.serve.recording import SegmentedRecorder, salvage
from streamdenoise.serve.service import BatchWorker, create_service, summed_rate

TOKEN = "s3cret-token-0123456789"


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def cameras(base: str, token: str | None = None) -> dict:
    status, body = get(base + "api/cameras", token)
    assert status == 200, body
    return {c["name"]: c for c in json.loads(body)["cameras"]}


def stop(cli) -> tuple[int, str]:
    cli.send_signal(signal.SIGTERM)
    _, err = cli.communicate(timeout=60)
    return cli.returncode, err


# -- config ---------------------------------------------------------------------------------
def test_check_accepts_a_good_file_and_lists_every_problem_of_a_bad_one(tmp_path, clip):
    good = write_config(
        tmp_path / "good.yaml",
        f"defaults: {{backend: test-blur}}\n"
        f"cameras:\n  a: {{source: {clip}, outputs: [record]}}\n"
        f"  b: {{source: 'rtsp://admin:hunter2@10.0.0.9/s1', record: {{segment: 30s}}}}\n",
    )
    done = run_cli("serve", "--check", good)
    assert done.returncode == 0, done.stderr
    assert "ok (2 cameras)" in done.stdout

    bad = write_config(
        tmp_path / "bad.yaml",
        "http: {bind: 0.0.0.0}\n"
        "cameras:\n"
        "  a: {source: 'rtsp://admin:hunter2@10.0.0.9/s1', outputs: [record], fps: -3}\n"
        "  b: {outputs: [record], record: {segment: soon, keep: 7d, max_size: lots}}\n"
        f"  c: {{source: {clip}, outputs: [{clip}]}}\n"
        "  'bad name': {source: demo}\n"
        "  d: {source: demo, outputs: [null]}\n"  # YAML's null, not the null output
        "  e: {source: demo}\n",
    )
    done = run_cli("serve", "--check", bad)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 9, lines  # one per mistake: d's bad list is not also "no outputs"
    text = done.stderr
    for expected in ("bind 0.0.0.0 is not loopback", "bad fps", "no source", "bad segment",
                     "bad max_size", "never overwrites", "names are letters",
                     "bad output: an empty entry", "camera 'e': no outputs"):  # fmt: skip
        assert expected in text, (expected, text)
    assert "Traceback" not in text and "hunter2" not in text and "admin" not in text


def test_units():
    assert parse_duration("90", "k") == 90 and parse_duration("7d", "k") == 7 * 86400
    assert parse_bytes("50GB", "k") == 50 * 10**9 and parse_bytes("1MiB", "k") == 1 << 20


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path, clip):
    config = write_config(
        tmp_path / "c.yaml", f"http: {{bind: 0.0.0.0}}\ncameras:\n  a: {{source: {clip}}}\n"
    )
    done = run_cli("serve", config, timeout=60)
    assert done.returncode == 2
    assert "http.token" in done.stderr and "Traceback" not in done.stderr


# -- the stateless denoiser ------------------------------------------------------------------
def moving(seed: int, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = size
    base = np.stack(np.meshgrid(np.linspace(0, 200, w), np.linspace(0, 200, h)) * 2)[:3]
    base = np.concatenate([base, base[:1]])[:3].transpose(1, 2, 0)
    out = []
    for i in range(n):
        image = np.roll(base, 2 * i, axis=1) + rng.normal(0, 20, base.shape)
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return out


STREAMS = ((1, (48, 64), None), (2, (48, 64), None), (3, (37, 53), 0.5))  # seed, size, strength


@functools.cache
def separate_outputs() -> list[list[np.ndarray]]:
    """Each stream of :data:`STREAMS` through a denoiser of its own."""
    outputs = []
    for seed, size, strength in STREAMS:
        alone = TorchDenoiser(model="temporal", precision="fp32", strength=strength or 1.0)
        outputs.append([alone.process(frame) for frame in moving(seed, 4, size)])
    return outputs


@pytest.mark.parametrize(
    ("on_device", "threads"),
    [(False, 0), (True, 0), (False, 3)],
    ids=["host", "device-path", "threads"],
)
def test_batched_streams_match_separate_denoisers(on_device, threads):
    """Three streams through one shared denoiser (two of one size batched together, one of
    another size) give what three denoisers of their own give: no state leaks between them.
    ``device-path`` runs the GPU code path (frames and states as torch tensors) on the CPU;
    ``threads`` spreads the per-stream work over a thread pool, as ``serve`` does."""
    streams = [moving(seed, 4, size) for seed, size, _ in STREAMS]
    shared = TorchDenoiser(model="temporal", precision="fp32")
    shared.frames_on_device = on_device
    shared.executor = ThreadPoolExecutor(threads) if threads else None
    states = [StreamState(strength=strength) for _, _, strength in STREAMS]
    for t in range(4):
        outputs, states = shared.process_batch([s[t] for s in streams], states)
        for i, image in enumerate(outputs):
            expected = separate_outputs()[i][t]
            diff = np.abs(expected.astype(int) - image.astype(int))
            assert diff.max() <= 1, (i, t, diff.max())
    assert states[0].recurrent is not None and states[0].recurrent.shape[0] == 1
    assert isinstance(states[0].recurrent, np.ndarray) != on_device  # a tensor on the device


def test_openvino_batches_streams_whose_states_its_graph_moves():
    """The OpenVINO graph moves a flow-aligned state itself, one flow per stream in the
    batch: three streams through one shared OpenVINO denoiser (two batched) give what a
    torch denoiser of their own gives."""
    from streamdenoise.backends import create_backend, unavailable_reason

    if unavailable_reason("openvino"):
        pytest.skip(unavailable_reason("openvino"))
    shared = create_backend("openvino", model="temporal", precision="fp32")
    assert shared.warps_state
    streams = [moving(seed, 4, size) for seed, size, _ in STREAMS]
    states = [StreamState(strength=strength) for _, _, strength in STREAMS]
    for t in range(4):
        outputs, states = shared.process_batch([s[t] for s in streams], states)
        for i, image in enumerate(outputs):
            diff = np.abs(separate_outputs()[i][t].astype(int) - image.astype(int))
            assert diff.max() <= 1 and diff.mean() < 0.01, (i, t, diff.max(), diff.mean())


def test_a_state_handed_to_another_tier_starts_afresh_with_its_noise_level():
    """When a shared ``model: auto`` changes tier, each camera's state goes to the new
    denoiser: its recurrent part (another network's) is dropped, its noise level kept."""
    frames = moving(5, 3, (96, 64))
    temporal = TorchDenoiser(model="temporal", precision="fp32")
    spatial = TorchDenoiser(model="spatial", precision="fp32")
    (state,) = temporal.process_batch(frames[:1], [StreamState()])[1]
    assert state.recurrent is not None and state.owner == "torch:temporal:fp32"
    sigma = state.sigma.copy()
    (state,) = spatial.process_batch(frames[1:2], [state])[1]
    assert state.recurrent is None and state.owner == "torch:spatial:fp32"
    assert state.sigma is not None and not np.array_equal(state.sigma, sigma)  # smoothed on
    # back on temporal: what a fresh stream with that noise level gets, not the old state
    fresh = StreamState(sigma=state.sigma.copy(), size=state.size)
    (after,), _ = temporal.process_batch(frames[2:], [state])
    (expected,), _ = temporal.process_batch(frames[2:], [fresh])
    assert np.array_equal(after, expected)


def test_a_monochrome_frame_gets_the_raised_noise_level():
    """An IR camera's night picture (R = G = B) is denoised as noise the same in every
    channel needs: the network is given MONOCHROME_NOISE_GAIN × the estimate, a colour frame
    the estimate itself."""
    from streamdenoise.models.noise import MONOCHROME_NOISE_GAIN, estimate_noise_sigma

    colour = moving(7, 2, (64, 96))
    mono = [np.repeat(f[..., 1:2], 3, axis=2) for f in colour]
    denoiser = TorchDenoiser(model="spatial", precision="fp32")
    for image, gain in ((mono[0], MONOCHROME_NOISE_GAIN), (colour[1], 1.0)):
        state = StreamState()
        _, sigma, *_ = denoiser._graph_inputs(image, state)
        expected = estimate_noise_sigma(image) / 255 * gain
        assert np.allclose(sigma.flatten(), expected, rtol=1e-5), (gain, sigma, expected)


# -- recordings ------------------------------------------------------------------------------
@pytest.mark.slow
def test_segments_hold_every_frame_exactly_once(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=60, size=(320, 64), fps=25)  # no repeats
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    config = write_config(
        tmp_path / "rec.yaml",
        "defaults: {backend: test-blur}\n"
        f"http: {{port: {port}}}\n"
        "cameras:\n"
        f"  door: {{source: {clip}, record: {{segment: 0.5s, "
        f"path: '{tmp_path}/rec/{{camera}}/%Y%m%d-%H%M%S.mkv'}}}}\n",
    )
    cli = start_cli("serve", config)
    folder = tmp_path / "rec" / "door"

    def finished():
        (output,) = cameras(base)["door"]["outputs"]
        return output["frames_written"] == 60 and output["current"] is None

    # the clip ends: the camera's outputs are finalized (EOF), the service keeps running
    wait_for(finished, 60, "the recording to finish")
    status, reasons = get(base + "readyz")
    assert status == 503 and "camera door: source ended" in reasons
    code, err = stop(cli)
    assert code == 130, err
    segments = sorted(folder.glob("*.mkv"), key=lambda path: path.stat().st_mtime_ns)
    probes = [probe(path) for path in segments]  # each plays on its own
    assert [p.frames for p in probes] == [13] * 4 + [8], [p.frames for p in probes]
    assert all(p.pts_seconds[0] == 0 and p.monotonic for p in probes)
    # the same frames, in order: each written frame is closest to the input frame it came from
    inputs = decode(clip)
    written = [image for path in segments for image in decode(path)]
    nearest = [min(range(60), key=lambda i: np.abs(inputs[i] - image).mean()) for image in written]
    assert nearest == list(range(60))


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]


def frame(i: int, seconds: float) -> Frame:
    image = np.full((32, 48, 3), i % 256, np.uint8)
    from fractions import Fraction

    return Frame(image=image, seq=i, pts=round(seconds * 1000), time_base=Fraction(1, 1000))


def record(recorder: SegmentedRecorder, count: int, noisy: bool = True) -> None:
    rng = np.random.default_rng(0)
    recorder.open(frame(0, 0), 10)
    for i in range(count):  # 10 frames a second
        f = frame(i, i / 10)
        if noisy:  # incompressible: every segment is well above 10 KB
            f.image = rng.integers(0, 256, f.image.shape, dtype=np.uint8)
        recorder.write(f)
    recorder.close()


def test_segments_never_overwrite(tmp_path):
    pattern = str(tmp_path / "{camera}" / "seg.mp4")  # one name: every segment collides
    taken = tmp_path / "yard" / "seg.mp4"
    taken.parent.mkdir()
    taken.write_bytes(b"someone else's file")
    recorder = SegmentedRecorder("yard", RecordConfig(path=pattern, segment_s=1.0), SinkOptions())
    record(recorder, 30, noisy=False)
    assert taken.read_bytes() == b"someone else's file"
    names = sorted(p.name for p in taken.parent.iterdir())
    assert names == ["seg-1.mp4", "seg-2.mp4", "seg-3.mp4", "seg.mp4"]
    assert [probe(taken.parent / f"seg-{n}.mp4").frames for n in (1, 2, 3)] == [10, 10, 10]


def test_a_recording_at_preset_auto_takes_the_choice_at_each_segment(tmp_path):
    """An encoder cannot change preset inside a file; each segment is a file of its own, so a
    recording at ``auto`` asks what the shared denoiser chose whenever one opens. A recording
    at a named preset never asks."""
    choices = iter(["veryfast", "ultrafast", None])  # None: nothing chosen, the first step
    pattern = str(tmp_path / "{camera}" / "seg.mp4")
    recorder = SegmentedRecorder("yard", RecordConfig(path=pattern, segment_s=1.0),
                                 SinkOptions(preset="auto"))  # fmt: skip
    assert recorder.x264_choice == "auto"
    recorder.take_preset(lambda: next(choices))
    record(recorder, 30, noisy=False)
    assert recorder.x264_choice == "auto"
    segments = [tmp_path / "yard" / name for name in ("seg.mp4", "seg-1.mp4", "seg-2.mp4")]
    # x264's own record of its settings in each file: subme 2 veryfast, 0 ultrafast
    assert [b"subme=2 " in p.read_bytes() for p in segments] == [True, False, True]
    assert b"subme=0 " in segments[1].read_bytes()
    stats = recorder.stats()
    assert stats["segments_per_x264_preset"] == {"veryfast": 2, "ultrafast": 1}, stats
    named = SegmentedRecorder("yard", RecordConfig(path=pattern, segment_s=1.0),
                              SinkOptions(preset="superfast"))  # fmt: skip
    named.take_preset(lambda: pytest.fail("a named preset asked for the choice"))
    record(named, 10, noisy=False)
    assert named.x264_choice == "superfast"
    assert named.stats()["segments_per_x264_preset"] == {"superfast": 1}


def test_retention_by_size_and_by_age(tmp_path):
    pattern = str(tmp_path / "{camera}" / "%Y" / "%H%M%S.mp4")
    folder = tmp_path / "yard"
    folder.mkdir()
    foreign = folder / "notes.mp4"  # not a name the pattern makes: never touched
    foreign.write_bytes(b"x" * 100_000)
    capped = RecordConfig(path=pattern, segment_s=1.0, max_size=parse_bytes("60KB", "x"))
    recorder = SegmentedRecorder("yard", capped, SinkOptions(preset="ultrafast"))
    record(recorder, 60)
    kept = sorted(folder.rglob("*-*.mp4")) + sorted(folder.rglob("[0-9]*[0-9].mp4"))
    assert recorder.segments == 6 and recorder.deleted >= 1
    assert sum(p.stat().st_size for p in set(kept)) <= 60_000
    assert recorder.last_closed in kept and foreign.exists()

    old = sorted(set(kept))[0].rename(kept[0].parent / "000000.mp4")  # a name not made now
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    aged = RecordConfig(path=pattern, segment_s=1.0, keep_s=3600)
    record(SegmentedRecorder("yard", aged, SinkOptions(preset="ultrafast")), 15)
    assert not old.exists() and foreign.exists()


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts", ".mov"])
def test_a_segment_cut_anywhere_is_salvaged_to_what_decodes(tmp_path, suffix):
    """A file cut at any byte (what a killed writer leaves) is rewritten to the frames that
    decode: every frame of the result decodes, and no frame that was complete is lost."""
    whole = tmp_path / f"whole{suffix}"
    recorder = SegmentedRecorder("yard", RecordConfig(path=str(whole), segment_s=60.0),
                                 SinkOptions(gop=10))  # fmt: skip
    record(recorder, 40)
    data = whole.read_bytes()
    kept = []
    for cut in range(len(data) // 8, len(data) + 1, len(data) // 8):
        damaged = tmp_path / f"cut{suffix}"
        damaged.write_bytes(data[:cut])
        frames = salvage(damaged)
        assert probe(damaged).frames == frames  # strict: every frame decodes
        kept.append(frames)
    assert kept == sorted(kept) and kept[-1] == 40 and kept[0] > 0, kept


@pytest.mark.slow
def test_a_segment_left_open_by_a_killed_service_is_salvaged(tmp_path, clip):
    port = free_port()
    pattern = f"{tmp_path}/rec/{{camera}}/%H%M%S.mp4"
    config = write_config(
        tmp_path / "rec.yaml",
        f"defaults: {{backend: test-blur}}\nhttp: {{port: {port}}}\ncameras:\n"
        f"  door: {{source: {clip}, loop: true, realtime: true, "
        f"record: {{segment: 1h, path: '{pattern}'}}}}\n",
    )
    cli = start_cli("serve", config)
    try:
        wait_for(lambda: cameras(f"http://127.0.0.1:{port}/")["door"]["frames_out"] > 40, 60,
                 "frames recorded")  # fmt: skip
    finally:
        cli.kill()  # no finalizing: as when power is lost
        cli.communicate(timeout=30)
    folder = tmp_path / "rec" / "door"
    (segment,) = folder.glob("*.mp4")
    assert (folder / ".door.recording").read_text() == str(segment)
    # the next recorder of the camera (a restarted service) salvages it
    SegmentedRecorder("door", RecordConfig(path=pattern), SinkOptions()).close()
    assert not (folder / ".door.recording").exists()
    assert probe(segment).frames > 0  # strict: decodes to its end


# -- HTTP, token, reload, signals -----------------------------------------------------------
@pytest.mark.slow
def test_token_reload_and_counters_that_keep_counting(tmp_path, clip):
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    cam = f"{{source: {clip}, loop: true, realtime: true, outputs: ['null']}}"
    text = (
        f"http: {{port: {port}, token: {TOKEN}}}\n"
        "defaults: {backend: test-blur}\n"
        f"cameras:\n  a: {cam}\n  b: {cam}\n"
    )
    config = write_config(tmp_path / "s.yaml", text)
    cli = start_cli("serve", config)
    try:
        wait_for(lambda: get(base + "healthz")[0] == 200, 60, "healthz")
        assert get(base + "metrics")[0] == 401 and get(base + "api/cameras")[0] == 401
        assert get(base + "readyz")[0] == 401
        wait_for(lambda: cameras(base, TOKEN)["b"]["frames_out"] > 10, 30, "frames")
        before = cameras(base, TOKEN)["a"]["frames_in"]

        # remove b, add c; a is unchanged and keeps counting from where it was
        config.write_text(text.replace("  b: ", "  c: "))
        status, body = get(base + "api/reload", TOKEN, method="POST")
        assert status == 200, body
        result = json.loads(body)
        assert result["added"] == ["c"] and result["removed"] == ["b"], result
        assert result["unchanged"] == ["a"]
        assert get(base + "api/reload", method="POST")[0] == 401
        now = wait_for(lambda: cameras(base, TOKEN), 10, "cameras")
        assert set(now) == {"a", "c"} and now["a"]["frames_in"] >= before

        # SIGHUP: a broken file changes nothing, a good one adds b back
        config.write_text("cameras: [")
        cli.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert set(cameras(base, TOKEN)) == {"a", "c"}
        changed = cam.replace("outputs:", "strength: 0.5, outputs:")
        config.write_text(text.replace("  b: ", "  c: ").replace(f"c: {cam}", f"c: {changed}")
                          + f"  b: {cam}\n")  # fmt: skip
        cli.send_signal(signal.SIGHUP)
        wait_for(lambda: "b" in cameras(base, TOKEN), 15, "b after SIGHUP")
        final = cameras(base, TOKEN)["a"]["frames_in"]
        assert final > before

        metrics = get(base + "metrics", TOKEN)[1]
        assert 'streamdenoise_camera_frames_in_total{camera="a"}' in metrics
        assert TOKEN not in metrics and TOKEN not in get(base + "api/cameras", TOKEN)[1]
        for _ in range(3):  # clients that hang up before the answer (reset, not closed)
            hang_up_after_asking(port, f"GET /metrics HTTP/1.1\r\nAuthorization: Bearer {TOKEN}")
        assert get(base + "healthz")[0] == 200
    finally:
        code, err = stop(cli)
    assert code == 130, err
    assert "Traceback" not in err, err
    assert "reload refused" in err and TOKEN not in err
    assert "reloaded: added b; restarted c" in err, err


def hang_up_after_asking(port: int, request: str) -> None:
    """Sends ``request`` and resets the connection at once, as a client whose timeout fired."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode() + b"\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def small_cameras(
    tmp_path: Path, settings: str, names: tuple[str, ...], extra: str = "", last_out: str = ""
):
    """``serve`` running ``names`` as 96×64 10 fps cameras with ``settings`` (YAML lines),
    outputs `null` (and ``last_out`` for the last camera) and ``extra`` settings of the last
    camera; (process, base URL)."""
    clip = make_clip(tmp_path / "small.mp4", frames=20, size=(96, 64), fps=10)
    port = free_port()

    def cam(name: str) -> str:
        last = name == names[-1]
        outputs = ", ".join(["'null'"] + ([f"'{last_out}'"] if last and last_out else []))
        source = f"source: {clip}, loop: true, realtime: true, outputs: [{outputs}]"
        return f"  {name}: {{{source}{extra if last else ''}}}"

    cams = [cam(n) for n in names]
    lines = [f"http: {{port: {port}}}", settings, "cameras:", *cams]
    config = write_config(tmp_path / "serve.yaml", "\n".join(lines) + "\n")
    return start_cli("serve", config), f"http://127.0.0.1:{port}/"


@pytest.mark.slow
def test_shared_neural_denoiser_batches_cameras(tmp_path):
    cli, base = small_cameras(
        tmp_path,
        "denoiser: {max_batch: 3}\ndefaults: {backend: torch, model: spatial, precision: fp32}",
        ("a", "b", "c"),
    )
    try:
        wait_for(lambda: all(c["frames_out"] > 20 for c in cameras(base).values()), 90, "frames")
        doc = json.loads(get(base + "api/cameras")[1])
        (denoiser,) = doc["denoisers"]
        assert denoiser["cameras"] == 3 and denoiser["shared"] == "batched"
        assert denoiser["max_batch"] == 3
        assert denoiser["model"] == "spatial"
        metrics = get(base + "metrics")[1]
        assert "streamdenoise_denoiser_batch_size_bucket" in metrics
        assert get(base)[0] == 200 and "streamdenoise serve" in get(base)[1]
        status, _ = get(base + "api/cameras/a/frame.jpg?view=noisy")
        assert status == 200
    finally:
        code, err = stop(cli)
    assert code == 130, err


# -- the batching worker -------------------------------------------------------------------
class QueueClient:
    """A worker client holding real frames in a real FrameQueue; records what came back."""

    def __init__(self, name: str, images: list[np.ndarray], log: list[str]) -> None:
        self.name, self.strength, self.dstate, self.log = name, None, None, log
        self.delivered: list[Frame] = []
        self.queue = FrameQueue(len(images) + 1, "lossless")
        for i, image in enumerate(images):
            self.queue.put(Frame(image=image, seq=i))

    def take(self):
        return self.queue.get(timeout=0)

    def ready_for_more(self) -> bool:
        return True

    def denoised(self, frame: Frame) -> None:
        self.log.append(self.name)
        self.delivered.append(frame)

    def ended(self, item) -> None:
        pass

    def denoise_failed(self, frame: Frame, error: BaseException) -> None:
        self.log.append(f"{self.name} failed: {error}")


def run_worker(
    service, clients: list[QueueClient], max_batch: int, frames: int, observe=None
) -> BatchWorker:
    worker = BatchWorker("test", service, max_batch, observe)
    for client in clients:
        worker.attach(client)
    worker.start()
    try:
        wait_for(lambda: len(clients[0].log) >= frames, 60, "every frame")
    finally:
        worker.stop()
    return worker


def test_a_flooding_camera_cannot_starve_the_others():
    log: list[str] = []
    image = np.zeros((16, 16, 3), np.uint8)
    clients = [
        QueueClient("flood", [image] * 100, log),
        QueueClient("b", [image] * 5, log),
        QueueClient("c", [image] * 5, log),
    ]
    run_worker(create_service("identity"), clients, max_batch=2, frames=110)
    assert log.count("flood") == 100 and log.count("b") == 5 and log.count("c") == 5
    # round-robin: each round one frame per camera at most, starting one camera further on
    assert max(i for i, name in enumerate(log) if name != "flood") < 16, log[:20]
    assert log[:15].count("flood") <= 5


def test_a_bad_frame_costs_only_its_own_camera():
    log: list[str] = []
    good = np.full((16, 16, 3), 100, np.uint8)
    garbage = np.zeros((16, 16, 3), np.float32)  # not a picture a decoder delivers
    clients = [
        QueueClient("a", [good] * 3, log),
        QueueClient("junk", [good, garbage, good], log),
        QueueClient("b", [good] * 3, log),
    ]
    service = create_service("torch", model="spatial", precision="fp32", device="cpu")
    run_worker(service, clients, max_batch=3, frames=9)
    assert log.count("a") == 3 and log.count("b") == 3 and log.count("junk") == 2
    (failure,) = [line for line in log if "failed" in line]
    assert failure.startswith("junk failed: expected H×W×3 uint8 frames")


def test_a_per_frame_model_on_openvino_overlaps_cameras(tmp_path):
    """A per-frame OpenVINO model on two threads keeps two cameras' frames in flight at once
    (on its two-stream graph), each camera's frames in order, each frame as a denoiser of the
    camera's own gives it one at a time."""
    from streamdenoise.backends.openvino_backend import OpenVINODenoiser

    clip = decode(make_clip(tmp_path / "in.mp4", frames=12, size=(160, 96)))
    frames = [image.astype(np.uint8) for image in clip]
    streams = {"a": frames, "b": frames[::-1], "c": frames[5:] + frames[:5]}
    settings = {"model": "fast", "precision": "fp32", "threads": 2}
    service = create_service("openvino", device="cpu", **settings)
    assert service.frames_in_flight == 2
    log: list[str] = []
    clients = [QueueClient(name, images, log) for name, images in streams.items()]
    calls: list[tuple[int, float]] = []
    started = time.monotonic()
    worker = run_worker(service, clients, 1, 36, observe=lambda n, s: calls.append((n, s)))
    elapsed = time.monotonic() - started
    assert worker.stats.frames == worker.stats.batches == len(calls) == 36
    assert all(n == 1 for n, _ in calls) and 0 < worker.stats.busy_s <= elapsed
    assert {key[-1] for key in service.denoiser.graph.requests} == {2}  # the parallel graph
    spans = [
        (c.name, f.marks["dequeued"], f.marks["denoised"]) for c in clients for f in c.delivered
    ]
    assert any(
        one != other and start < end_other and start_other < end
        for one, start, end in spans
        for other, start_other, end_other in spans
    ), "no two cameras' frames were in flight at once"
    for client in clients:
        assert [f.seq for f in client.delivered] == list(range(12))
        alone = OpenVINODenoiser(**settings)
        for frame, image in zip(client.delivered, streams[client.name], strict=True):
            diff = np.abs(alone.process(image).astype(int) - frame.image.astype(int))
            assert diff.max() <= 1, (client.name, frame.seq, diff.max())


@pytest.mark.slow
def test_still_cameras_share_an_auto_of_their_own(tmp_path, monkeypatch):
    """A camera on a fixed mount gets the still-camera ladder (``fixed`` in the place of the
    in-graph search tier, below ``wide-temporal``), apart from the cameras that may move."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cli, base = small_cameras(
        tmp_path, "defaults: {backend: torch, precision: fp32}", ("a", "b"), ", still_camera: true"
    )
    try:
        wait_for(lambda: all(c["frames_out"] > 5 for c in cameras(base).values()), 120, "frames")
        found = json.loads(get(base + "api/cameras")[1])["denoisers"]
        by_name = {d["name"]: d for d in found}
        assert set(by_name) == {"torch/auto/fp32", "torch/auto/fp32+still"}, found
        moving, still = by_name["torch/auto/fp32"], by_name["torch/auto/fp32+still"]
        assert moving["cameras"] == still["cameras"] == 1
        assert (moving["still_camera"], still["still_camera"]) == (False, True)
        # 10 fps of 96x64 is nothing for any tier: each runs the top of what its ladder and
        # the costs measured here leave
        assert still["tier"] == still["rungs"][-1].split("/")[0], found
        assert moving["tier"] == moving["rungs"][-1].split("/")[0] != "fixed", found
        assert not any(r.startswith("temporal-gpu/") for r in still["rungs"]), found
    finally:
        code, err = stop(cli)
    assert code == 130, err


def test_cameras_not_yet_open_count_at_the_rate_of_those_that_are():
    """What a shared ``model: auto`` chooses for when its first frame comes before every
    camera has opened (or said its rate)."""
    assert summed_rate([25.0, None, None], 3) == 75.0
    assert summed_rate([10.0, 30.0], 4) == 80.0
    assert summed_rate([None, None], 2) is None and summed_rate([], 0) is None
    assert summed_rate([15.0], 0) == 15.0  # never fewer cameras than those that called


@pytest.mark.slow
def test_model_auto_runs_one_calibrated_tier_for_every_camera(tmp_path, monkeypatch):
    """``model: auto`` (the default) shares one denoiser too: one tier, chosen once for the
    cameras' summed frame rate at their size (calibration cached in a temporary folder).
    Camera b also records to a file at ``preset: auto``, on a machine (its calibration cache
    says) where x264 at veryfast leaves no tier room: the recording is made at superfast."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = CalibrationCache(tmp_path / "cache" / "streamdenoise")
    slow = {"ms_per_frame": 1e6}
    cache.store(cal.codec_key(cal.machine_key(), (96, 64), "encode veryfast"), slow)
    recording = tmp_path / "b.mp4"
    cli, base = small_cameras(
        tmp_path, "defaults: {backend: torch, precision: fp32}", ("a", "b"), last_out=recording
    )
    try:
        wait_for(lambda: all(c["frames_out"] > 5 for c in cameras(base).values()), 120, "frames")
        (denoiser,) = json.loads(get(base + "api/cameras")[1])["denoisers"]
        assert denoiser["cameras"] == 2 and denoiser["auto"] is True
        assert denoiser["tier"] in [t.name for t in shipped_ladder()], denoiser
        # only b's file encodes (`null` outputs take no CPU), at the preset chosen for it
        assert denoiser["x264_encoders"] == ["superfast"], denoiser
        metrics = get(base + "metrics")[1]
        assert f'tier="{denoiser["tier"]}"' in metrics
    finally:
        code, err = stop(cli)
    assert code == 130, err
    # both cameras, also when one was slow to open (taken at the other's rate)
    assert denoiser["source_fps"] == 20, denoiser
    tier = re.escape(denoiser["tier"])
    assert re.search(rf"auto: tier {tier}/fp32 for 20 fps of 96x64 cameras", err), err
    assert "recording at x264 preset superfast" in err, err
    assert b"subme=1 " in recording.read_bytes()  # x264's own record: superfast


@pytest.mark.slow
def test_recordings_take_a_new_preset_at_their_next_segment_as_cameras_come_and_go(
    tmp_path, monkeypatch
):
    """One recording camera, then three, then one, by reload. The calibration cache says
    x264 at veryfast takes half of one camera's frame interval per frame (over the cores
    there are): room for a tier beside one camera, none beside three (a third of the
    interval each frame, the same encoding per frame). The shared ``model: auto`` chooses
    again at each change and every recording takes the choice at its next segment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache = CalibrationCache(tmp_path / "cache" / "streamdenoise")
    veryfast = {"ms_per_frame": 50.0 * cal.usable_cores()}  # 10 fps: a 100 ms interval
    cache.store(cal.codec_key(cal.machine_key(), (96, 64), "encode veryfast"), veryfast)
    clip = make_clip(tmp_path / "small.mp4", frames=20, size=(96, 64), fps=10)
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    record = f"record: {{segment: 1s, path: '{tmp_path}/rec/{{camera}}/%H%M%S.mp4'}}"
    cam = f"{{source: {clip}, loop: true, realtime: true, outputs: [record], {record}}}"
    head = f"http: {{port: {port}}}\ndefaults: {{backend: torch, precision: fp32}}\ncameras:\n"
    config = write_config(tmp_path / "serve.yaml", head + f"  a: {cam}\n")
    cli = start_cli("serve", config)

    def segments(name: str, preset: str) -> int:
        (output,) = cameras(base)[name]["outputs"]
        return output.get("segments_per_x264_preset", {}).get(preset, 0)

    def reload(names: str) -> None:
        config.write_text(head + "".join(f"  {n}: {cam}\n" for n in names))
        status, body = get(base + "api/reload", method="POST")
        assert status == 200, body

    try:
        wait_for(lambda: segments("a", "veryfast") >= 2, 120, "veryfast segments of a")
        reload("abc")
        wait_for(lambda: all(segments(n, "superfast") >= 2 for n in "abc"), 60, "superfast")
        (denoiser,) = json.loads(get(base + "api/cameras")[1])["denoisers"]
        assert denoiser["x264_preset"] == "superfast", denoiser
        choice = denoiser["x264_preset_choices"][-1]
        assert (choice["sources"], choice["fps"], choice["preset"]) == (3, 30, "superfast")
        # what a dashboard sees: a real Prometheus scraping the service
        job = f"  - job_name: site\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        with prometheus(tmp_path, job) as query:
            series = (
                'streamdenoise_camera_output_segments_total{output="record",preset="superfast"}'
            )
            found = wait_for(lambda: len(r := query(f"{series} > 0")) == 3 and r, 30, "scraped")
        assert {s["metric"]["camera"] for s in found} == {"a", "b", "c"}
        # and an operator: the dashboard in a real browser names the tier and the preset
        page = chromium(tmp_path, "--dump-dom", base).stdout
        assert re.search(r"torch/auto/fp32: 3 cam, mean batch [\d.]+, tier [\w-]+/fp32, "
                         r"recordings x264 superfast", page), page[-2000:]  # fmt: skip
        before = segments("a", "veryfast")
        reload("a")
        wait_for(lambda: segments("a", "veryfast") >= before + 2, 60, "veryfast again")
    finally:
        code, err = stop(cli)
    assert code == 130, err
    assert "Traceback" not in err, err
    assert "encode at x264 superfast from their next file (3 cameras, 30 fps" in err, err
    assert "encode at x264 veryfast from their next file (1 camera, 10 fps" in err, err

    def subme(name: str) -> list[int]:  # x264's own record: 2 at veryfast, 1 at superfast
        files = sorted((tmp_path / "rec" / name).glob("*.mp4"), key=lambda f: f.stat().st_mtime)
        return [int(re.search(rb"subme=(\d) ", f.read_bytes())[1]) for f in files]

    assert subme("a")[:2] == [2, 2] and 1 in subme("a") and subme("a")[-1] == 2, subme("a")
    for name in "bc":  # the first segment may open before the new choice is made
        assert set(subme(name)[1:]) == {1}, (name, subme(name))
