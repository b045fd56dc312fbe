"""A fixed channel permutation (RealNVP's alternative to a learned 1x1 convolution)."""

from __future__ import annotations

import torch
from torch import Tensor

from bplf.flows.base import FlowModule


class Permutation(FlowModule):
    """Reorder channels by a fixed permutation; log|det| = 0.

    ``mode="reverse"`` reverses the channel order (so consecutive couplings alternate which half
    they transform); ``mode="shuffle"`` draws a random permutation once, at construction.
    """

    def __init__(self, channels: int, mode: str = "reverse"):
        super().__init__()
        if mode == "reverse":
            perm = torch.arange(channels - 1, -1, -1)
        elif mode == "shuffle":
            perm = torch.randperm(channels)
        else:
            raise ValueError(f"Permutation mode must be 'reverse' or 'shuffle', not {mode!r}")
        self.mode = mode
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return y[:, self.inv_perm]
