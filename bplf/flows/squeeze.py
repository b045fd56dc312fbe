"""Squeeze: space-to-depth on 2x2 patches, the step between scales of a multi-scale flow."""

from __future__ import annotations

from torch import Tensor

from bplf.flows.base import FlowModule


class Squeeze(FlowModule):
    """(N, C, H, W) -> (N, 4C, H/2, W/2); a permutation of entries, so log|det| = 0.

    Output channel ``4c + 2i + j`` holds pixel (i, j) of each 2x2 patch of input channel c.
    """

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width, got {h}x{w}")
        y = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(n, 4 * c, h // 2, w // 2), x.new_zeros(n)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        n, c4, h, w = y.shape
        c = c4 // 4
        x = y.reshape(n, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c, 2 * h, 2 * w)
