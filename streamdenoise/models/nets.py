"""Denoising network architectures.

One family, :class:`UNetDenoiser`: a small U-Net that enters at half resolution (a stride-2
conv), halves the resolution three more times and doubles the channels each time (so every
level costs about the same per conv), then pixel-shuffles back and adds the noisy frame
(global residual). Doubling channels per level keeps MACs flat per level while the receptive
field grows fast, which is what buys quality per MAC on a CPU budget. The noise level enters
as a per-channel bias of the first layer.

The temporal variant also takes its own previous output as input: that is the recurrent
state, an explicit input/output so the graph exports unchanged to ONNX/TensorRT. After a
reset the state is the current noisy frame itself ("nothing known about the past"). With
``blend`` it also predicts, per pixel, how much of ``prev − noisy`` to take: a learned
motion-adaptive recursive filter (the classic camera 3DNR), fed at full resolution.

Only export-friendly ops are used: conv, ConvTranspose (stride 2), relu, pixel shuffle,
add, sub, mul, concat. Measured with OpenVINO bf16 at 720p here, every 3×3 conv of the body
runs at ~230 GMAC/s whatever its level, so MACs spent in the body are not wasted; layout
changes (pixel shuffles, splits, NCHW↔blocked reorders) are, which is why the stem and the
blend avoid them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NetConfig:
    """Architecture hyper-parameters; stored verbatim in every weights file."""

    temporal: bool = True
    channels: tuple[int, ...] = (16, 32, 64, 128)
    enc_convs: tuple[int, ...] = (1, 1, 2, 2)
    dec_convs: tuple[int, ...] = (1, 1, 0, 0)
    unshuffle: int = 2
    # "strided": a stride-2 conv in, with σ added as a per-channel bias (the only stem so
    # far; the first models' pixel-unshuffle + σ-map stem cost a sixth more CPU time).
    stem: str = "strided"
    stem_kernel: int = 4
    # Temporal only: the last layer also predicts a per-pixel weight w, and the output is
    # noisy + correction + w·(prev − noisy). The past then reaches the output at full
    # resolution (a learned, motion-adaptive recursive filter) instead of squeezing through
    # the 16-channel half-resolution stem together with the current frame.
    blend: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        data = dict(data)
        for key in ("channels", "enc_convs", "dec_convs"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    @property
    def multiple(self) -> int:
        """Frame height and width must be padded to a multiple of this."""
        return self.unshuffle * 2 ** (len(self.channels) - 1)


def _convs(ch: int, n: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(n):
        layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(inplace=True)]
    return layers


class UNetDenoiser(nn.Module):
    """``forward(noisy, sigma, prev) -> denoised``, all float in [0, 1], NCHW.

    ``sigma`` is (N, 3, 1, 1): the per-channel noise standard deviation on the [0, 1] scale.
    ``prev`` (temporal models only) is the previous output, same shape as ``noisy``.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        r = config.unshuffle
        in_frames = 2 if config.temporal else 1
        if config.stem != "strided" or r != 2:
            raise ValueError(f"unsupported stem {config.stem!r} ×{r} (only strided ×2)")
        k = config.stem_kernel
        self.head = nn.Conv2d(3 * in_frames, c[0], k, stride=2, padding=(k - 2) // 2)
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
        if config.blend and not config.temporal:
            raise ValueError("blend needs a temporal model (it blends with prev)")
        self.tail = nn.Conv2d(c[0], 3 * r * r, 3, padding=1)
        # a layer of its own rather than 4 more tail channels: slicing them apart cost
        # OpenVINO a 2.5 ms reference split per 720p frame
        self.blend_tail = nn.Conv2d(c[0], r * r, 3, padding=1) if config.blend else None
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
        for last in (self.tail, self.blend_tail):
            if last is not None:
                nn.init.normal_(last.weight, std=1e-3)

    def forward(
        self, noisy: torch.Tensor, sigma: torch.Tensor, prev: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = torch.cat([noisy, prev], 1) if self.config.temporal else noisy
        skips = [self.enc0(F.relu(self.head(x) + self.sigma_bias(sigma)))]
        for down, enc in zip(self.downs, self.encs, strict=True):
            skips.append(enc(down(skips[-1])))
        y = skips.pop()
        for up, dec in zip(reversed(self.ups), reversed(self.decs), strict=True):
            y = dec(F.relu(up(y) + skips.pop()))
        r = self.config.unshuffle
        out = noisy + F.pixel_shuffle(self.tail(y), r)
        if self.blend_tail is not None:
            out = out + F.pixel_shuffle(self.blend_tail(y), r) * (prev - noisy)
        return out


def build_net(config: NetConfig) -> UNetDenoiser:
    return UNetDenoiser(config)
