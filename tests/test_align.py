"""The in-graph motion search: recovers real displacements, exports with dynamic shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from streamdenoise.lab.data import read_rgb
from streamdenoise.models.align import CostVolumeAligner

FRAME = Path(__file__).resolve().parents[2] / "shared/datasets/val/videos/vid4-walk/00000.png"


@pytest.fixture(scope="module")
def frame() -> torch.Tensor:
    if not FRAME.exists():
        pytest.skip("shared datasets not found")
    image = read_rgb(FRAME)[:384, :640].astype(np.float32) / 255
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("dy, dx", [(0, 0), (-3, 5), (11, -17), (24, 20)])
def test_flow_recovers_a_translation_under_noise(frame, dy, dx):
    # previous frame: the current one moved by (dy, dx), so each current pixel was at +(-dy, -dx)
    previous = torch.roll(frame, shifts=(dy, dx), dims=(2, 3))
    noisy = frame + torch.randn(frame.shape, generator=torch.Generator().manual_seed(0)) * 0.1
    aligner = CostVolumeAligner()
    with torch.no_grad():
        state = torch.cat([previous, previous], 1)
        flow = aligner.flow(noisy, previous) * 2  # finest stage is half resolution
        aligned = aligner(noisy, state)[:, :3]
    inner = (slice(None), slice(None), slice(40, -40), slice(40, -40))
    # the untrained softmax sharpness: within a pixel, or 10 % of a large motion
    assert abs(flow[0, 0][inner[2:]].median().item() - dx) < max(1.0, 0.1 * abs(dx))
    assert abs(flow[0, 1][inner[2:]].median().item() - dy) < max(1.0, 0.1 * abs(dy))
    before = (previous - frame)[inner].abs().mean().item()
    after = (aligned - frame)[inner].abs().mean().item()
    assert after <= 0.6 * before or (dy, dx) == (0, 0)


def test_onnx_export_follows_the_frame_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from streamdenoise.lab.trainer import SMALL_CONFIG
    from streamdenoise.models.nets import build_net, initial_state
    from streamdenoise.models.onnx import export_onnx

    torch.manual_seed(0)
    net = build_net(SMALL_CONFIG).eval()
    path = export_onnx(net, tmp_path / "small.onnx", "small")
    session = ort.InferenceSession(str(path))
    for h, w in ((64, 96), (128, 224)):  # neither is the size the graph was traced at
        x = torch.rand(1, 3, h, w)
        prev = torch.roll(initial_state(x, 6), 3, 3)
        sigma = torch.full((1, 3, 1, 1), 0.1)
        with torch.no_grad():
            want = net(x, sigma, prev).numpy()
        got = session.run(None, {"noisy": x.numpy(), "sigma": sigma.numpy(), "prev": prev.numpy()})
        assert got[0].shape == want.shape
        assert np.abs(got[0] - want).max() < 2e-2
