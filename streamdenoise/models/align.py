"""Motion compensation inside the network graph: block matching by a cost volume.

A recurrent denoiser can only average what stays in place, so its state has to be moved onto
the current frame first. Doing that inside the graph keeps it on the device the network runs
on (no host round trip on a GPU) and lets every runtime that runs the network run it too.

Coarse to fine, on grey images: at 1/8 resolution (where averaging has removed most of the
noise) every displacement within a few coarse pixels is scored by the squared difference
between the current frame and the shifted previous output, summed over a small window; a
softmax over the scores gives a sub-pixel flow (its expectation). The same is done again at
finer levels around that estimate (1/4 and 1/2 in the first, ``coarse`` pyramid; down to
full resolution, with wider windows, in the ``fine`` one), and the state is resampled
bilinearly along the result. Only conv, pooling, softmax, resize and GridSample (ONNX opset
16+) are used. How well each pyramid lines frames up: ``benchmarks/motion_search.py``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# (downscale factor, search radius in pixels at that scale, matching window) per stage,
# coarse to fine: ±32 px at 1/8, then ±8 and ±2 full-resolution pixels around the estimate so
# far, each cost summed over 3×3 pixels (the first design; ``NetConfig.extra["align"]`` names
# another pyramid)
STAGES = ((8, 4, 3), (4, 2, 3), (2, 1, 3))
#: Pyramids by name. "fine": wider matching windows (a 3×3 window of noisy pixels picks
#: noise as often as motion) and a last ±1 px step at full resolution; on validation pairs
#: at σ = 25 it left 24 % less warp error than the first design (DIS optical flow: 57 %
#: less; benchmarks/results/motion_search.md).
PYRAMIDS = {"coarse": STAGES, "fine": ((8, 4, 5), (4, 2, 7), (2, 1, 9), (1, 1, 9))}
SHARPNESS_START = 50.0
# Added to the mean matching cost before normalising by it: flat areas (sky, walls) have no
# cost to speak of, and dividing by ~0 there only amplifies noise. About the variance left
# by 2×2 averaging of σ = 5 noise, on the [0, 1] scale.
COST_FLOOR = 1e-4
# Rec. 601 luma: the matching only needs a single well-exposed channel
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def _shift_bank(radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot kernels whose conv outputs the image shifted by each displacement, and the
    displacements themselves as a 1×1 conv weight (dx, dy) that turns weights into a flow."""
    size = 2 * radius + 1
    kernels = torch.zeros(size * size, 1, size, size)
    displacement = torch.zeros(2, size * size, 1, 1)
    for k in range(size * size):
        dy, dx = divmod(k, size)
        kernels[k, 0, dy, dx] = 1.0
        displacement[0, k] = dx - radius
        displacement[1, k] = dy - radius
    return kernels, displacement


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W) sampled at each pixel + ``flow`` (N, 2, H, W) (dx, dy in
    pixels): bilinear, borders replicated."""
    _n, _, h, w = image.shape
    xs = torch.arange(w, dtype=image.dtype, device=image.device).view(1, 1, w)
    ys = torch.arange(h, dtype=image.dtype, device=image.device).view(1, h, 1)
    gx = (xs + flow[:, 0]) * (2.0 / (w - 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / (h - 1)) - 1.0
    grid = torch.stack([gx, gy], -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


class CostVolumeAligner(nn.Module):
    """``forward(noisy, state) -> state`` moved onto ``noisy``; the flow goes from the
    previous output (the state's first three channels) to the current noisy frame."""

    def __init__(self, pyramid: str = "coarse") -> None:
        super().__init__()
        self.stages = PYRAMIDS[pyramid]
        for i, (_, radius, _window) in enumerate(self.stages):
            bank, disp = _shift_bank(radius)
            self.register_buffer(f"bank{i}", bank, persistent=False)
            self.register_buffer(f"disp{i}", disp, persistent=False)
        self.register_buffer("grey", torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1), persistent=False)
        # sharpness of the softmax over normalised costs, learned (log scale) per stage
        self.log_sharpness = nn.Parameter(
            torch.full((len(self.stages),), math.log(SHARPNESS_START))
        )

    def _match(self, cur: torch.Tensor, past: torch.Tensor, i: int) -> torch.Tensor:
        bank, disp = getattr(self, f"bank{i}"), getattr(self, f"disp{i}")
        shifted = F.conv2d(past, bank, padding=bank.shape[-1] // 2)
        window = self.stages[i][2]
        cost = F.avg_pool2d((shifted - cur) ** 2, window, stride=1, padding=window // 2)
        # normalised by the mean cost over displacements: contrast-free sharpness
        cost = cost / (cost.mean(1, keepdim=True) + COST_FLOOR)
        weights = torch.softmax(-cost * self.log_sharpness[i].exp(), 1)
        return F.conv2d(weights, disp)

    def flow(self, noisy: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(N, 2, H/f, W/f) flow from ``noisy`` to ``previous`` in pixels of the finest stage
        (factor f)."""
        return self.grey_flow(F.conv2d(noisy, self.grey), F.conv2d(previous, self.grey))

    def grey_flow(self, cur: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        """The same search between two grey images (N, 1, H, W), on their own grid: the flow
        in pixels of the finest stage."""
        flow = None
        for i, (factor, _, _) in enumerate(self.stages):
            cur_s, past_s = F.avg_pool2d(cur, factor), F.avg_pool2d(past, factor)
            if flow is not None:
                up = self.stages[i - 1][0] // factor
                flow = F.interpolate(flow, scale_factor=up, mode="bilinear", align_corners=False)
                flow = flow * up
                past_s = warp(past_s, flow)
                flow = flow + self._match(cur_s, past_s, i)
            else:
                flow = self._match(cur_s, past_s, i)
        return flow

    def macs(self, height: int, width: int) -> int:
        """Multiply-accumulates of one alignment (the matching convs and grey conversions)."""
        total = 2 * 3 * height * width
        for factor, radius, _ in self.stages:
            shifts = (2 * radius + 1) ** 2
            total += (height // factor) * (width // factor) * shifts * (shifts + 2)
        return total

    def forward(self, noisy: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        factor = self.stages[-1][0]
        # the search itself is not trained (only its sharpness): gradients through a ratio of
        # costs back into the previous frames made training from scratch diverge
        flow = self.flow(noisy.detach(), state[:, :3].detach()) * factor
        flow = F.interpolate(flow, scale_factor=factor, mode="bilinear", align_corners=False)
        return warp(state, flow)
