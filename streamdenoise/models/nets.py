"""Denoising network architectures.

One family, :class:`UNetDenoiser`: a small U-Net that enters at half resolution (a stride-2
conv), halves the resolution three more times and doubles the channels each time (so every
level costs about the same per conv), then pixel-shuffles back and adds the noisy frame
(global residual). Doubling channels per level keeps MACs flat per level while the receptive
field grows fast, which is what buys quality per MAC on a CPU budget. The noise level enters
as a per-channel bias of the first layer. The cheapest tier enters at quarter resolution
instead (a stride-4 conv: no tensor at half or full resolution but the frame itself) and
predicts the image rather than the noise (see ``extra.residual``).

The temporal variant is recurrent: its state, an explicit input/output (``prev`` →
``denoised``) so the graph exports unchanged to ONNX/TensorRT, holds its previous output and a
running average of the *noisy* frames. A small gate sets, per pixel, how much of the past
goes into the average (a learned motion-adaptive recursive filter, the camera's 3DNR) and the
U-Net denoises that average (its 2DNR). The backends motion-compensate the state before each
frame (``streamdenoise.models.motion``). After a reset the state is the current noisy frame
("nothing known about the past").

Only export-friendly ops are used: conv, ConvTranspose (stride 2), relu, pixel shuffle,
add, sub, mul, concat, slice, clip. On CPU runtimes every 3×3 conv of the body runs at about
the same rate whatever its level, so MACs spent in the body are well spent, while layout
changes (pixel shuffles, splits, NCHW↔blocked reorders) cost time out of proportion to their
arithmetic; hence a stem without them (profile and figures: docs/models.md,
benchmarks/results/bench_cpu.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from streamdenoise.models.align import CostVolumeAligner


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyper-parameters; stored verbatim in every weights file."""

    temporal: bool = True
    channels: tuple[int, ...] = (16, 32, 64, 128)
    enc_convs: tuple[int, ...] = (1, 1, 2, 2)
    dec_convs: tuple[int, ...] = (1, 1, 0, 0)
    unshuffle: int = 2
    # "strided": a stride-2 conv in, with σ added as a per-channel bias: no pixel-unshuffle
    # and no broadcast σ map, the layout work a CPU pays for out of proportion.
    stem: str = "strided"
    stem_kernel: int = 4
    # Temporal models keep [previous output, running average of the noisy frames] (6
    # channels). A small gate sets the average's per-pixel weight w from prev − noisy
    # (motion-adaptive, clamped to [0, MAX_ACCUMULATION]) and the U-Net denoises the average,
    # so still regions are denoised from many frames' worth of signal instead of one
    # (averaging denoised outputs instead cannot bring back detail that a per-frame estimate
    # loses alike in every frame). The state is motion-compensated before it is fed back, by
    # ``motion``: "shift" (global translation) or "flow" (dense optical flow); see
    # streamdenoise.models.motion. A property of how the model was trained.
    motion: str = "flow"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        data = dict(data)
        data.pop("align_state", None)  # older files: alignment is always on now
        blend, state = data.pop("blend", False), data.pop("state", None)
        if state is None and "motion" not in data:
            state = "output"  # the first temporal design predates both fields
        if data.get("temporal", True) and (blend or state == "output"):
            raise ValueError("a retired temporal design (previous-output state); retrain it")
        # files written before dense flow existed were aligned by the global shift
        data.setdefault("motion", "shift")
        for key in ("channels", "enc_convs", "dec_convs"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def state_channels(self) -> int:
        """Channels of the recurrent state (``prev`` in, the whole output out)."""
        return 6 if self.temporal else 3

    @property
    def multiple(self) -> int:
        """Frame height and width must be padded to a multiple of this."""
        return self.unshuffle * 2 ** (len(self.channels) - 1)


# Cap of the running average's weight: at 0.95 it averages ~40 frames' worth and still
# forgets, so a scene that changes slowly (light, shadows) is never frozen in place.
MAX_ACCUMULATION = 0.95
# Width of the accumulator's gate, and its initial weight (see UNetDenoiser).
GATE_CHANNELS = 8
GATE_START = 0.4


def initial_state(noisy, channels: int):
    """The state after a reset — "nothing known about the past": the noisy frame itself,
    once per 3 state channels (numpy arrays or torch tensors, (N, 3, H, W))."""
    if channels == 3:
        return noisy
    if isinstance(noisy, np.ndarray):
        return np.concatenate([noisy] * (channels // 3), axis=1)
    return torch.cat([noisy] * (channels // 3), 1)


def _convs(ch: int, n: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True)]
    return layers


class UNetDenoiser(nn.Module):
    """``forward(noisy, sigma, prev) -> denoised``, all float in [0, 1], NCHW.

    ``sigma`` is (N, 3, 1, 1): the per-channel noise standard deviation on the [0, 1] scale.
    ``prev`` (temporal models only) is the previous output, (N, state_channels, H, W). The
    output has ``state_channels`` channels too: the image is the first three.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        r = config.unshuffle
        # spatial: [noisy]; temporal: [average, noisy, prev output]
        in_channels = 3 + (config.state_channels if config.temporal else 0)
        k = config.stem_kernel
        if config.stem != "strided" or r not in (2, 4) or k < r or (k - r) % 2:
            raise ValueError(f"unsupported stem {config.stem!r} ×{r}, kernel {k}")
        self.head = nn.Conv2d(in_channels, c[0], k, stride=r, padding=(k - r) // 2)
        self.sigma_bias = nn.Conv2d(3, c[0], 1)
        self.enc0 = nn.Sequential(*_convs(c[0], config.enc_convs[0] - 1))
        self.downs = nn.ModuleList()
        self.encs = nn.ModuleList()
        self.ups = nn.ModuleList()
        self.decs = nn.ModuleList()
        for i in range(1, len(c)):
            self.downs.append(
                nn.Sequential(nn.Conv2d(c[i - 1], c[i], 2, stride=2), nn.ReLU(inplace=True))
            )
            self.encs.append(nn.Sequential(*_convs(c[i], config.enc_convs[i])))
            self.ups.append(nn.ConvTranspose2d(c[i], c[i - 1], 2, stride=2))
            self.decs.append(nn.Sequential(*_convs(c[i - 1], config.dec_convs[i - 1])))
        if config.motion not in ("shift", "flow", "graph"):
            raise ValueError(f"unknown motion {config.motion!r}")
        self.align = None
        if config.temporal and config.motion == "graph":
            self.align = CostVolumeAligner(config.extra.get("align", "coarse"))
        # the output conv sees 3×3 neighbours, or (``extra.tail_kernel`` = 1) only its own
        # pixel: a large share of a thin network's cost, and the levels below it already see
        # wide
        tail_kernel = config.extra.get("tail_kernel", 3)
        # Output = noisy + predicted noise (global residual), or (``extra.residual`` False)
        # the predicted image itself. A stride-4 entry needs the latter: its output conv gives
        # each 4×4×3 block from c[0] < 48 features, and a residual would keep the noise of
        # every dimension those features do not span, while clean blocks lose little there
        # (on the Vid4 frames the best 24-dimensional linear projection keeps 51 dB PSNR).
        self.residual = config.extra.get("residual", True)
        self.tail = nn.Conv2d(c[0], 3 * r * r, tail_kernel, padding=tail_kernel // 2)
        # The accumulator's weight comes from a gate of its own, ahead of the U-Net (whose
        # input the average is): a stride-2 conv on prev − noisy with σ as a bias, one 3×3
        # conv, and one that predicts the weight of each of the 2×2 pixels it stands for.
        self.gate = None
        if config.temporal:
            g = GATE_CHANNELS
            gate_body = config.extra.get("gate_body", True)
            self.gate = nn.ModuleDict(
                {
                    "head": nn.Conv2d(3, g, k, stride=r, padding=(k - r) // 2),
                    "sigma_bias": nn.Conv2d(3, g, 1),
                    # the small tier's budget has no room for the gate's own 3×3 conv
                    **({"body": nn.Conv2d(g, g, 3, padding=1)} if gate_body else {}),
                    "tail": nn.Conv2d(g, r * r, 3, padding=1),
                }
            )
        self._init_weights()

    def _init_weights(self) -> None:
        """He init: torch's default shrinks activations ~6× in variance per layer, which
        left a 10-layer net barely past identity after hundreds of steps on CPU."""
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d):
                # a transposed conv's weight is (in, out, k, k): its true fan-in is "fan_out"
                mode = "fan_out" if isinstance(mod, nn.ConvTranspose2d) else "fan_in"
                nn.init.kaiming_normal_(mod.weight, mode=mode, nonlinearity="relu")
                nn.init.zeros_(mod.bias)
        for last in (self.tail, self.gate["tail"] if self.gate else None):
            if last is not None:
                nn.init.normal_(last.weight, std=1e-3)
        if not self.residual:
            self._init_block_transform()
        if self.gate is not None:
            # start by averaging everywhere: the ghosts this leaves where things move are
            # what teaches the gate to see motion (from w = 0 there is nothing to learn from)
            nn.init.constant_(self.gate["tail"].bias, GATE_START)

    def _init_block_transform(self) -> None:
        """An image-predicting net starts as a low-pass of the frame, not as noise: the head
        analyses each block into its lowest-frequency components (a 2-D DCT of luma and two
        colour-difference planes), each as a +/- pair of channels so the ReLU passes both
        signs, and the output conv synthesises the block back from them; the levels below
        join in through the (silenced) up-sampling conv as they learn."""
        r, channels = self.config.unshuffle, self.config.channels[0]
        if self.tail.kernel_size != (1, 1) or self.head.kernel_size != (r, r):
            raise ValueError("the image-predicting output needs a 1×1 output conv, r×r head")
        colours = torch.tensor([[1.0, 1, 1], [1, 0, -1], [1, -2, 1]])
        colours /= colours.norm(dim=1, keepdim=True)
        x = torch.arange(r, dtype=torch.float32)
        dct = torch.stack([torch.cos(torch.pi * (2 * x + 1) * u / (2 * r)) for u in range(r)])
        dct /= dct.norm(dim=1, keepdim=True)
        # (colour, vertical, horizontal frequency), lowest first: luma carries the detail
        order = [(c, u, v) for u in range(r) for v in range(r) for c in range(3)]
        order.sort(key=lambda k: (k[1] + k[2]) * (1 if k[0] == 0 else 2.5) + k[0] * 0.01)
        basis = [
            torch.einsum("c,y,x->cyx", colours[c], dct[u], dct[v])
            for c, u, v in order[: channels // 2]
        ]
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.sigma_bias.weight.zero_()
            self.tail.weight.zero_()
            self.tail.bias.zero_()
            for k, b in enumerate(basis):
                for sign, channel in ((1, 2 * k), (-1, 2 * k + 1)):
                    self.head.weight[channel, : b.shape[0]] = sign * b
                    self.tail.weight[:, channel, 0, 0] = sign * b.reshape(-1)
            nn.init.normal_(self.ups[0].weight, std=1e-3)

    def forward(
        self, noisy: torch.Tensor, sigma: torch.Tensor, prev: torch.Tensor | None = None
    ) -> torch.Tensor:
        base = noisy
        if self.align is not None:
            prev = self.align(noisy, prev)
        if self.gate is not None:
            diff = prev[:, 3:] - noisy
            g = F.relu(self.gate["head"](diff) + self.gate["sigma_bias"](sigma))
            if "body" in self.gate:
                g = F.relu(self.gate["body"](g))
            weight = F.pixel_shuffle(self.gate["tail"](g), self.config.unshuffle)
            base = noisy + weight.clamp(0.0, MAX_ACCUMULATION) * diff
            # the current frame too: where the gate let a ghost into the average, the U-Net
            # (wider view than the gate) can still see what is really there now
            x = torch.cat([base, noisy, prev[:, :3]], 1)
        else:
            x = noisy
        y = self.unet(F.relu(self.head(x) + self.sigma_bias(sigma)))
        r = self.config.unshuffle
        out = F.pixel_shuffle(self.tail(y), r)
        if self.residual:
            out = base + out
        if self.gate is not None:
            return torch.cat([out, base], 1)
        return out

    def unet(self, stem: torch.Tensor) -> torch.Tensor:
        """The encoder-decoder: the stem's features in, the last decoder features (at the
        stem's resolution, before the output conv) out."""
        skips = [self.enc0(stem)]
        for down, enc in zip(self.downs, self.encs, strict=True):
            skips.append(enc(down(skips[-1])))
        y = skips.pop()
        for up, dec in zip(reversed(self.ups), reversed(self.decs), strict=True):
            y = dec(F.relu(up(y) + skips.pop()))
        return y


def build_net(config: NetConfig) -> UNetDenoiser:
    return UNetDenoiser(config)
