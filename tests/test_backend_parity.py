"""Every runtime runs the same exported graph and agrees with torch fp32.

Tolerances (issue 4): fp32 runtimes max abs diff ≤ 1e-3 on [0, 1] data; reduced precision
(bf16, fp16) PSNR against the reference ≥ 45 dB. Networks here are freshly initialised with a
fixed seed — parity is a property of the runtimes, not of the trained weights.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from streamdenoise.backends.neural import StreamState
from streamdenoise.models.nets import NetConfig, build_net, initial_state
from streamdenoise.models.onnx import (
    export_onnx,
    find_or_export_onnx,
    net_hash,
    onnx_filename,
    onnx_metadata,
)

FP32_MAX_ABS = 1e-3
REDUCED_MIN_PSNR = 45.0
# (batch, height, width), all multiples of the default net's 16
SHAPES = [(1, 32, 48), (1, 64, 16), (2, 48, 32)]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda() -> bool:
    return torch.cuda.is_available()


def make_net(temporal: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    return build_net(NetConfig(temporal=temporal)).eval()


@pytest.fixture(scope="module")
def temporal_net():
    return make_net(True)


@pytest.fixture(scope="module")
def temporal_onnx(temporal_net, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "temporal.onnx"
    return export_onnx(temporal_net, path, "temporal")


def clip(batch: int, height: int, width: int, frames: int = 4, seed: int = 1):
    """A short [0, 1] sequence: a smooth pattern moving one pixel per frame, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for t in range(frames):
        base = 0.5 + 0.3 * np.sin((xx + t) / 5.0) * np.cos(yy / 7.0)
        image = np.stack([base, base * 0.8, 1 - base])[None].repeat(batch, 0)
        out.append(np.clip(image + rng.normal(0, 0.08, image.shape), 0, 1).astype(np.float32))
    sigma = np.full((batch, 3, 1, 1), 0.08, np.float32)
    return out, sigma


def run_sequence(step, frames, sigma, feed_back_own_output=False) -> list[np.ndarray]:
    """Temporal recurrence: each output is the next frame's ``prev``; the first prev is the
    state after a reset (the noisy frame, once per 3 state channels of the default net).

    ``feed_back_own_output`` passes the runtime's own output array back as ``prev`` (the
    TensorRT runner then keeps the state on the GPU) instead of a copy.
    """
    outputs, prev = [], initial_state(frames[0], NetConfig().state_channels)
    for noisy in frames:
        out = step({"noisy": noisy, "sigma": sigma, "prev": prev})
        outputs.append(np.array(out))
        prev = out if feed_back_own_output else outputs[-1]
    return outputs


def torch_step(net):
    def step(feeds):
        with torch.no_grad():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in feeds]
            return net(*args).numpy()

    return step


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-20))


def assert_parity(runtime_step, net, precision: str) -> None:
    for batch, height, width in SHAPES:
        frames, sigma = clip(batch, height, width)
        got = run_sequence(runtime_step, frames, sigma)
        want = run_sequence(torch_step(net), frames, sigma)
        for t, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g.shape == w.shape
            if precision == "fp32":
                diff = float(np.abs(g - w).max())
                assert diff <= FP32_MAX_ABS, (batch, height, width, t, diff)
            else:
                assert psnr(g, w) >= REDUCED_MIN_PSNR, (batch, height, width, t, psnr(g, w))


# -- export -----------------------------------------------------------------------------------
def test_export_is_valid_onnx_with_dynamic_size_and_state_io(temporal_onnx, temporal_net):
    import onnx

    proto = onnx.load(str(temporal_onnx))
    onnx.checker.check_model(proto, full_check=True)
    inputs = {i.name: i.type.tensor_type.shape.dim for i in proto.graph.input}
    assert list(inputs) == ["noisy", "sigma", "prev"]
    assert [d.dim_param for d in inputs["noisy"]] == ["batch", "", "height", "width"]
    assert [o.name for o in proto.graph.output] == ["denoised"]
    meta = onnx_metadata(temporal_onnx)
    assert meta["streamdenoise_hash"] == net_hash(temporal_net)
    assert meta["multiple"] == str(temporal_net.config.multiple)
    assert meta["temporal"] == "true"


def test_spatial_export_has_no_state_input(tmp_path):
    import onnx

    path = export_onnx(make_net(temporal=False), tmp_path / "spatial.onnx", "spatial")
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["noisy", "sigma"]


def test_hash_follows_the_weights(temporal_net):
    changed = make_net(True)
    with torch.no_grad():
        changed.tail.bias.add_(1e-3)
    assert net_hash(changed) != net_hash(temporal_net)
    assert net_hash(make_net(True)) == net_hash(temporal_net)
    assert onnx_filename("temporal", "abc") == "temporal-abc.onnx"


def test_missing_export_is_written_once_to_the_cache(monkeypatch, tmp_path, temporal_net):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("streamdenoise.artifacts.PACKAGED", tmp_path / "no-engines")
    first = find_or_export_onnx("temporal", temporal_net)
    assert first.is_relative_to(tmp_path) and net_hash(temporal_net) in first.name
    stamp = first.stat().st_mtime_ns
    assert find_or_export_onnx("temporal", temporal_net) == first
    assert first.stat().st_mtime_ns == stamp
    retrained = make_net(True, seed=5)
    assert find_or_export_onnx("temporal", retrained) != first


# -- runtimes ---------------------------------------------------------------------------------
@pytest.mark.skipif(not _has("onnxruntime"), reason="onnxruntime not installed")
def test_onnxruntime_matches_torch_fp32(temporal_onnx, temporal_net):
    from streamdenoise.backends.onnxruntime_backend import OrtGraph

    assert_parity(OrtGraph(temporal_onnx, threads=2), temporal_net, "fp32")


@pytest.mark.skipif(not _has("openvino"), reason="openvino not installed")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_matches_torch(temporal_onnx, temporal_net, precision):
    from streamdenoise.backends.openvino_backend import OpenVINOGraph
    from streamdenoise.errors import BackendUnavailable

    try:
        graph = OpenVINOGraph(temporal_onnx, precision)
    except BackendUnavailable as err:
        pytest.skip(str(err))
    assert_parity(graph, temporal_net, precision)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
@pytest.mark.skipif(not _has("tensorrt"), reason="tensorrt not installed")
def test_tensorrt_fp16_matches_torch(temporal_onnx, temporal_net, tmp_path):
    import tensorrt as trt

    from streamdenoise.backends.tensorrt_engine import EngineKey, EngineRunner, Profile
    from streamdenoise.backends.tensorrt_engine import load_or_build_engine as load

    names = ["noisy", "sigma", "prev"]
    gpu = torch.cuda.get_device_name(0)
    for batch, height, width in SHAPES:
        profile = Profile.for_size(batch, height, width, 16)
        key = EngineKey("temporal", net_hash(temporal_net), gpu, trt.__version__, "fp16", profile)
        engine = load(temporal_onnx, key, names, tmp_path)
        runner = EngineRunner(engine, names, batch, height, width)
        try:
            frames, sigma = clip(batch, height, width)
            want = run_sequence(torch_step(temporal_net), frames, sigma)
            for on_device in (False, True):
                got = run_sequence(runner, frames, sigma, feed_back_own_output=on_device)
                for g, w in zip(got, want, strict=True):
                    assert psnr(g, w) >= REDUCED_MIN_PSNR, (batch, height, width, on_device)
        finally:
            runner.close()


# -- whole backends: uint8 frames in, odd sizes, the recurrent state ---------------------------
FRAME_SIZES = [(37, 29), (64, 48), (50, 33)]  # (width, height), odd ones padded by the backend


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory, temporal_net):
    from streamdenoise.models.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "paritynet.pt"
    save_weights(path, "paritynet", temporal_net, {"note": "random init, parity tests only"})
    return path


@pytest.fixture
def isolated_cache(monkeypatch, tmp_path):
    """Exports and engines go to a temporary cache, never into the checkout."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr("streamdenoise.artifacts.PACKAGED", tmp_path / "no-engines")
    return tmp_path


def noisy_frames(width: int, height: int, count: int = 4) -> list[np.ndarray]:
    frames, _ = clip(1, height, width, frames=count, seed=width)
    return [(f[0].transpose(1, 2, 0) * 255).round().astype(np.uint8) for f in frames]


def states(backend, frames) -> list[np.ndarray]:
    """The float output of every frame (the recurrent state the backend keeps)."""
    out = []
    for frame in frames:
        image = backend.process(frame)
        assert image.shape == frame.shape and image.dtype == np.uint8
        out.append(backend.state_array())
    return out


def assert_backend_parity(name: str, precision: str, weights_file, device=None) -> None:
    from streamdenoise.backends import create_backend

    reference = create_backend("torch", model=str(weights_file), precision="fp32", device="cpu")
    candidate = create_backend(name, model=str(weights_file), precision=precision, device=device)
    try:
        for width, height in FRAME_SIZES:
            frames = noisy_frames(width, height)
            for backend in (reference, candidate):
                backend.prepare(width, height)
                backend.reset()
            want, got = states(reference, frames), states(candidate, frames)
            for t, (g, w) in enumerate(zip(got, want, strict=True)):
                if precision == "fp32":
                    diff = float(np.abs(g - w).max())
                    assert diff <= FP32_MAX_ABS, (name, width, height, t, diff)
                else:
                    assert psnr(g, w) >= REDUCED_MIN_PSNR, (name, width, height, t, psnr(g, w))
    finally:
        reference.close()
        candidate.close()


@pytest.mark.skipif(not _has("onnxruntime"), reason="onnxruntime not installed")
def test_onnxruntime_backend_matches_torch(weights_file, isolated_cache):
    assert_backend_parity("onnxruntime", "fp32", weights_file)


@pytest.mark.skipif(not _has("openvino"), reason="openvino not installed")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_backend_matches_torch(weights_file, isolated_cache, precision):
    from streamdenoise.backends.openvino_backend import OpenVINOGraph
    from streamdenoise.errors import BackendUnavailable

    if precision == "bf16":
        try:
            OpenVINOGraph.check_bf16()
        except BackendUnavailable as err:
            pytest.skip(str(err))
    assert_backend_parity("openvino", precision, weights_file)


@pytest.mark.skipif(not _has("openvino"), reason="openvino not installed")
def test_openvino_converts_per_frame_models_frames_in_the_graph(tmp_path, isolated_cache):
    """uint8 frames cross into the graph as they are and come back as uint8: the same pictures
    as the float path rounded on the host (within one level, where float rounding lands on
    a half), on sizes that need padding, one by one and batched."""
    from streamdenoise.backends import create_backend
    from streamdenoise.models.weights import save_weights

    path = tmp_path / "spatialnet.pt"
    save_weights(path, "spatialnet", make_net(False), {"note": "random init, parity tests only"})
    backend = create_backend("openvino", model=str(path), precision="fp32")
    reference = create_backend("torch", model=str(path), precision="fp32", device="cpu")
    try:
        for width, height in FRAME_SIZES:
            frame = noisy_frames(width, height, 1)[0]
            got = backend.process(frame)
            want = reference.process(frame)
            assert got.dtype == np.uint8 and got.shape == frame.shape
            assert np.abs(got.astype(int) - want).max() <= 1, (width, height)
            assert np.mean(got != want) < 0.01, (width, height)
        frames = noisy_frames(64, 48, 3)
        batched, _ = backend.process_batch(frames, [StreamState() for _ in frames])
        for frame, image in zip(frames, batched, strict=True):
            assert np.abs(image.astype(int) - reference.process(frame)).max() <= 1
        key_types = {key[3] for key in backend.graph.requests}
        assert key_types == {True}, "per-frame uint8 frames should never take the float graph"
    finally:
        backend.close()
        reference.close()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_torch_cuda_matches_torch_cpu(weights_file, precision):
    """Also covers the recurrent state kept on the GPU between frames (frames 2..4)."""
    assert_backend_parity("torch", precision, weights_file, device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
def test_torch_picks_cuda_fp16_by_default_when_a_gpu_is_present(weights_file):
    from streamdenoise.backends import create_backend

    backend = create_backend("torch", model=str(weights_file))
    assert (backend.device, backend.precision) == ("cuda", "fp16")
    out = backend.process(noisy_frames(50, 33, 1)[0])
    assert out.shape == (33, 50, 3)
    assert backend.describe()["gpu"]
    backend.close()


def test_frames_converted_on_the_device_match_the_host_path(weights_file):
    """The path CUDA takes (uint8 up, convert/pad/clip where the net runs), run on the CPU."""
    from streamdenoise.backends import create_backend

    host = create_backend("torch", model=str(weights_file), precision="fp32", device="cpu")
    on_device = create_backend("torch", model=str(weights_file), precision="fp32", device="cpu")
    on_device.frames_on_device = True
    for width, height in FRAME_SIZES:
        frames = noisy_frames(width, height)
        for backend in (host, on_device):
            backend.prepare(width, height)
        for frame in frames:
            want, got = host.process(frame), on_device.process(frame)
            assert np.abs(got.astype(int) - want).max() <= 1
            assert np.abs(on_device.state_array() - host.state_array()).max() <= 1e-5
        floats = frames[0].astype(np.float32) / 255
        assert np.abs(on_device.process_float(floats) - host.process_float(floats)).max() <= 1e-5


def test_threads_reach_every_cpu_runtime(weights_file, isolated_cache):
    from streamdenoise.backends import create_backend

    before = torch.get_num_threads()
    try:
        torch_backend = create_backend("torch", model=str(weights_file), device="cpu", threads=1)
        assert torch.get_num_threads() == 1 and torch_backend.describe()["threads"] == 1
    finally:
        torch.set_num_threads(before)
    if _has("onnxruntime"):
        ort_backend = create_backend("onnxruntime", model=str(weights_file), threads=1)
        assert ort_backend.graph.session.get_session_options().intra_op_num_threads == 1
    if _has("openvino"):
        ov_backend = create_backend("openvino", model=str(weights_file), threads=1)
        ov_backend.prepare(64, 48)
        (idle,) = ov_backend.graph.requests.values()
        assert idle.get().get_compiled_model().get_property("INFERENCE_NUM_THREADS") == 1


@pytest.mark.skipif(_cuda(), reason="checks the CPU-only refusal")
def test_cuda_requests_without_a_gpu_are_one_clear_line(weights_file):
    from streamdenoise.backends import create_backend
    from streamdenoise.errors import BackendUnavailable

    for kwargs in ({"precision": "fp16"}, {"device": "cuda"}, {"device": "cuda:1"}):
        with pytest.raises(BackendUnavailable, match="GPU") as err:
            create_backend("torch", model=str(weights_file), **kwargs)
        assert "\n" not in str(err.value)
    backend = create_backend("torch", model=str(weights_file))
    assert backend.device == "cpu"  # auto on a CPU-only machine
    with pytest.raises(BackendUnavailable, match="CPU precision"):
        create_backend("torch", model=str(weights_file), precision="bf16", device="cuda:0")


def test_missing_hardware_is_one_clear_line():
    from streamdenoise.backends import create_backend, unavailable_reason
    from streamdenoise.errors import BackendUnavailable

    if _cuda() and _has("tensorrt"):
        pytest.skip("TensorRT can run here")
    reason = unavailable_reason("tensorrt")
    assert reason and "\n" not in reason
    assert "CUDA" in reason or "pip install" in reason
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        create_backend("tensorrt")


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA device")
@pytest.mark.skipif(not _has("tensorrt"), reason="tensorrt not installed")
def test_tensorrt_backend_matches_torch_and_reuses_its_plan(weights_file, isolated_cache, caplog):
    from streamdenoise.backends import create_backend

    assert_backend_parity("tensorrt", "fp16", weights_file)
    plans = sorted(isolated_cache.rglob("*.plan"))
    assert plans, "no plan was cached"
    stamps = {p: p.stat().st_mtime_ns for p in plans}
    backend = create_backend("tensorrt", model=str(weights_file))
    backend.prepare(64, 48)  # covered by a cached profile: loaded, not rebuilt
    assert {p: p.stat().st_mtime_ns for p in plans} == stamps
    plan = backend.describe()["plan"]
    backend.close()
    with open(plan, "r+b") as handle:  # corrupt the plan: warning, then a rebuild
        handle.write(b"garbage" * 64)
    backend = create_backend("tensorrt", model=str(weights_file))
    with caplog.at_level("WARNING"):
        backend.prepare(64, 48)
    backend.process(noisy_frames(64, 48, 1)[0])
    backend.close()
    assert "corrupt" in caplog.text


@pytest.mark.skipif(not _has("openvino"), reason="openvino not installed")
def test_openvino_moves_the_state_in_its_graph_for_float_frames_too(weights_file, isolated_cache):
    """Unclipped float frames (``eval --protocol float``) take the float-frame graph, which
    moves the state along the flow as the uint8 one does: torch's frames, state carried."""
    from streamdenoise.backends import create_backend

    reference = create_backend("torch", model=str(weights_file), precision="fp32", device="cpu")
    candidate = create_backend("openvino", model=str(weights_file), precision="fp32")
    assert candidate.warps_state and not reference.warps_state
    frames, _ = clip(1, 33, 50, frames=4, seed=3)
    for t, frame in enumerate(frames):
        x = frame[0].transpose(1, 2, 0) * 1.2 - 0.1  # past [0, 1], as unclipped noise goes
        want, got = reference.process_float(x), candidate.process_float(x)
        assert got.shape == want.shape and got.dtype == np.float32
        assert float(np.abs(got - want).max()) <= FP32_MAX_ABS, t
