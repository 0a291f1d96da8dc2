"""A second, feature-level state in ``wide-temporal``: does carrying the previous frame's
denoised features (not only its pixels) lift the recurrence on fast motion?

    taskset -c 0 python benchmarks/feature_state_probe.py train features --minutes 45 --work p &
    taskset -c 1 python benchmarks/feature_state_probe.py train wide-temporal --minutes 45 --work p
    python benchmarks/feature_state_probe.py report p/features.pt p/wide-temporal.pt --label L

``wide-temporal`` carries pixels: its previous output and a gated running average of the
noisy frames, lined up by dense flow; on fast motion it leads ``wide`` by 0.4–0.6 dB and a
perfect flow would add only 0.1–0.3 (``motion_oracle.py``), so the open question is what the
network is given of the past, not how well it is lined up. Recurrent video restorers
(BasicVSR, Chan et al., CVPR 2021) carry *features* along the flow instead. The candidate
``features`` keeps the last decoder features of the previous frame (48 channels at 1/4
resolution, the tensor the output conv reads), moves them along the same flow (scaled to
that grid) and fuses them with the current stem features by a 1×1 convolution that starts as
"the current features only": step 0 is exactly ``wide-temporal``. The control is
``wide-temporal`` fine-tuned the same minutes on the same clips (both on one core each, side
by side). A quality probe: no speed is measured (a 48-channel quarter-resolution warp costs
what the six full-resolution state channels' warp does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from deep_state_probe import (  # noqa: E402
    fine_tune,
    plot,
    probe_args,
    quality_section,
    training_runs,
)
from suite.report import machine_lines, save_results  # noqa: E402

from streamdenoise.lab import trainer  # noqa: E402
from streamdenoise.lab.speed import machine_record  # noqa: E402
from streamdenoise.models import load_model  # noqa: E402
from streamdenoise.models.motion import MotionCompensator, warp_state  # noqa: E402
from streamdenoise.models.nets import UNetDenoiser, initial_state  # noqa: E402

START = "wide-temporal"


class PastFeatures(nn.Module):
    """Stands in for the network's (empty) first encoder stage: fuses the stem features
    with ``past`` (the previous frame's decoder features, already moved), identity first."""

    def __init__(self, channels: int, stage: nn.Module) -> None:
        super().__init__()
        self.stage = stage
        self.fuse = nn.Conv2d(2 * channels, channels, 1)
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.bias.zero_()
            self.fuse.weight[:, :channels, 0, 0] = torch.eye(channels)
        self.past: torch.Tensor | None = None

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        past = self.past if self.past is not None else torch.zeros_like(stem)
        return self.stage(F.relu(self.fuse(torch.cat([stem, past.to(stem.dtype)], 1))))


class Recorded(nn.Module):
    """The output conv, remembering what it read (the decoder features to carry)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.last: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.last = features
        return self.conv(features)


def build(name: str) -> UNetDenoiser:
    """The shipped ``wide-temporal`` or (``features``) the candidate grown from it."""
    net = load_model(START)[0]
    if name == "features":
        net.enc0 = PastFeatures(net.config.channels[0], net.enc0)
        net.tail = Recorded(net.tail)
    return net


def quarter_flow(flow: np.ndarray, factor: int) -> np.ndarray:
    """A full-resolution flow (h, w, 2) on the grid ``factor`` times coarser, in its pixels."""
    h, w = flow.shape[:2]
    return cv2.resize(flow, (w // factor, h // factor), interpolation=cv2.INTER_AREA) / factor


def run_clip(net: UNetDenoiser, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, 3, H, W) denoised causally: ``trainer.run_clip`` for the control; for the
    candidate the same pixel state plus the features, both moved by the backends' flow."""
    if not isinstance(net.enc0, PastFeatures):
        return trainer.run_clip(net, noisy, sigma)
    factor = net.config.unshuffle
    prev = initial_state(noisy[:, 0], net.config.state_channels)
    compensators = [MotionCompensator("flow") for _ in range(noisy.shape[0])]
    clips = noisy.detach().float().permute(0, 1, 3, 4, 2).numpy()
    flows = [[c.observe(f) for f in clip] for c, clip in zip(compensators, clips, strict=True)]
    net.enc0.past, outs = None, []
    for t in range(noisy.shape[1]):
        x = noisy[:, t]
        if t > 0:
            moved, past = [], []
            for i, c in enumerate(compensators):
                moved.append(c.apply(prev[i : i + 1], x[i : i + 1], flows[i][t]))
                small = quarter_flow(flows[i][t], factor)
                past.append(warp_state(net.tail.last[i : i + 1], small))
            prev, net.enc0.past = torch.cat(moved), torch.cat(past)
        y = net(x, sigma[:, t], prev)
        outs.append(y[:, :3])
        prev = y
    net.enc0.past = None
    return torch.stack(outs, 1)


def render(doc: dict) -> str:
    lines = [
        "# A feature-level state in `wide-temporal`",
        "",
        *machine_lines(doc["machine"]),
        "",
        "`features`: the previous frame's last decoder features (48 channels at 1/4 "
        "resolution) moved along the dense flow and fused with the stem features (a 1×1 "
        "convolution that starts as the identity on the current ones); `wide-temporal`: the "
        "control, fine-tuned the same way.",
        "",
        *quality_section(doc, f"`{START}`"),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    args = probe_args(__doc__, ("features", START), "feature-state-probe")
    if args.action == "train":
        fine_tune(args, build(args.name), run_clip)
        return 0
    doc = {"machine": machine_record(), "command": " ".join(sys.argv),
           "training": training_runs(args.name)}  # fmt: skip
    save_results(args.out, "feature_state_probe", args.label, doc, render, plot)
    print(render(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
