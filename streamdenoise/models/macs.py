"""Multiply-accumulate count of a model, measured with a real forward pass.

Forward hooks on every conv / transposed conv read the actual output shapes, so the count
follows whatever the graph really does at that frame size (padding included).
"""

from __future__ import annotations

import torch
from torch import nn

from streamdenoise.models.nets import NetConfig, UNetDenoiser, build_net, initial_state


def count_net_macs(net: UNetDenoiser, width: int, height: int) -> int:
    """MACs of one forward pass of ``net`` on a width×height frame (padded as inference does)."""
    m = net.config.multiple
    h, w = -(-height // m) * m, -(-width // m) * m
    device = next(net.parameters()).device
    x = torch.zeros(1, 3, h, w, device=device)
    sigma = torch.zeros(1, 3, 1, 1, device=device)
    state = (initial_state(x, net.config.state_channels),) if net.config.temporal else ()
    total = count_module_macs(net, (x, sigma, *state))
    if net.align is not None:  # its convs are functional: no module hooks see them
        total += net.align.macs(h, w)
    return total


def count_module_macs(model: nn.Module, inputs: tuple) -> int:
    """MACs of the conv and transposed-conv modules of one ``model(*inputs)`` pass (functional
    convs are not seen)."""
    total = 0

    def conv_hook(mod: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            # every input pixel scatters a k×k×out patch
            n_in = inputs[0].numel() // inputs[0].shape[1]
            total += (
                n_in * mod.in_channels * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
            )
        else:
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += output.numel() * k

    hooks = [
        mod.register_forward_hook(conv_hook)
        for mod in model.modules()
        if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d)
    ]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def count_macs(model_name: str, width: int = 1280, height: int = 720) -> int:
    """MACs per frame of the shipped model ``model_name`` ("temporal", "spatial", ...)."""
    from streamdenoise.models import load_model

    net, _ = load_model(model_name)
    return count_net_macs(net, width, height)


def count_config_macs(config: NetConfig, width: int = 1280, height: int = 720) -> int:
    """MACs per frame of the architecture ``config`` alone: the network is built on torch's
    ``meta`` device, so shapes flow through every layer without any weights or arithmetic
    (instant even for a large tier)."""
    with torch.device("meta"):
        net = build_net(config)
    return count_net_macs(net, width, height)
