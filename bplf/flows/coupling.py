"""The bi-parallel affine coupling: a convolutional and a linear conditioner, side by side."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bplf.flows.base import FlowModule

BRANCHES = ("both", "conv", "linear")


def _zero_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=bias)
    nn.init.zeros_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def conv_stack(in_channels: int, hidden_channels: int, out_channels: int, depth: int = 3,
               kernel_size: int = 3, hidden_kernel_size: int | None = None) -> nn.Sequential:
    """``depth`` convolutions with ReLU between; first and last ``kernel_size``, inner ones
    ``hidden_kernel_size`` (default ``kernel_size``); the last one is zero-initialised."""
    if depth < 1:
        raise ValueError(f"coupling depth must be >= 1, got {depth}")
    inner = hidden_kernel_size or kernel_size
    layers: list[nn.Module] = []
    channels = in_channels
    for i in range(depth - 1):
        k = kernel_size if i == 0 else inner
        layers += [nn.Conv2d(channels, hidden_channels, k, padding="same"), nn.ReLU()]
        channels = hidden_channels
    layers.append(_zero_conv(channels, out_channels, kernel_size))
    return nn.Sequential(*layers)


class BiParallelAffineCoupling(FlowModule):
    """Affine coupling whose conditioner has two parallel branches, summed.

    Channels split into ``(x_a, x_b)``; ``h = conv_branch(x_b) + linear_branch(x_b)`` gives a
    log-scale pre-activation ``h_s`` and a shift ``t`` for ``x_a``:
    ``y_a = x_a * s + t`` with ``s = sigmoid(h_s + 2)`` (bounded, so training cannot blow up),
    ``y_b = x_b``; log|det| = sum(log s). Both branches end zero-initialised, so a fresh coupling
    is the fixed scaling ``x_a * sigmoid(2)``. ``branches`` selects "both", "conv" or "linear"
    (the ablations); the unused branch attribute is ``None``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, depth: int = 3,
                 kernel_size: int = 3, hidden_kernel_size: int | None = None,
                 branches: str = "both"):
        super().__init__()
        if in_channels < 2:
            raise ValueError(f"a coupling needs at least 2 channels, got {in_channels}")
        if branches not in BRANCHES:
            raise ValueError(f"branches must be one of {BRANCHES}, not {branches!r}")
        self.branches = branches
        self.channels_a = in_channels // 2
        self.channels_b = in_channels - self.channels_a
        out = 2 * self.channels_a
        self.conv_branch = (conv_stack(self.channels_b, hidden_channels, out, depth, kernel_size,
                                       hidden_kernel_size) if branches != "linear" else None)
        # A 1x1 convolution is a linear map of x_b at every pixel; it needs its own bias only
        # when there is no conv branch to provide one.
        self.linear_branch = (_zero_conv(self.channels_b, out, 1, bias=branches == "linear")
                              if branches != "conv" else None)

    def conditioner(self, x_b: Tensor) -> tuple[Tensor, Tensor]:
        """``(h_s, t)`` for the transformed half, from the sum of the active branches."""
        h = 0
        if self.conv_branch is not None:
            h = h + self.conv_branch(x_b)
        if self.linear_branch is not None:
            h = h + self.linear_branch(x_b)
        # at least float32 (bf16 under autocast is upcast): the log-det sums must stay accurate
        h_s, t = h.to(torch.promote_types(h.dtype, torch.float32)).chunk(2, dim=1)
        return h_s, t

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.channels_a], x[:, self.channels_a :]
        h_s, t = self.conditioner(x_b)
        log_s = F.logsigmoid(h_s + 2.0)
        y_a = x_a * log_s.exp() + t
        return torch.cat([y_a, x_b], dim=1), log_s.flatten(1).sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        y_a, x_b = y[:, : self.channels_a], y[:, self.channels_a :]
        h_s, t = self.conditioner(x_b)
        x_a = (y_a - t) * (-F.logsigmoid(h_s + 2.0)).exp()
        return torch.cat([x_a, x_b], dim=1)

