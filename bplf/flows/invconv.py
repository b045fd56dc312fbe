"""Invertible 1x1 convolution (Glow), LU-parametrised so that its log-determinant is cheap."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bplf.flows.base import FlowModule, per_sample


class InvConv1x1(FlowModule):
    """A learned channel mixing ``y = W x`` per pixel, ``W = P L (U + diag(sign * exp(log_s)))``.

    P is a fixed permutation, L unit lower-triangular, U strictly upper-triangular; so
    log|det| = H * W * sum(log_s). Initialised at a random rotation. The inverse weight is
    computed in float64 and cast back, so reconstructions stay exact in float32.
    """

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(s.abs().log().float())

    def weight(self) -> Tensor:
        """The (C, C) matrix W."""
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        w = self.weight()
        y = F.conv2d(x, w[:, :, None, None])
        return y, per_sample(x.shape[2] * x.shape[3] * self.log_s.sum(), x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv[:, :, None, None])
