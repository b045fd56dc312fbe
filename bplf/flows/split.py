"""Split: factor out half the channels at the end of a scale, with a learned conditional prior."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bplf.flows.base import FlowModule
from bplf.flows.prior import gaussian_log_prob, gaussian_sample


class Split(FlowModule):
    """Keep the first ``C - C//2`` channels, factor out the last ``C//2`` as a latent ``z``.

    ``z`` is modelled by a Gaussian whose mean and log-std come from a zero-initialised 3x3
    convolution of the kept half (so at init it is a standard normal). In the multi-scale
    log-likelihood a factored-out half contributes log p(z | kept): ``forward`` returns that term
    in the ``logdet`` slot, which is how it enters the total, and drops ``z``. A model that must
    reconstruct uses :meth:`split` (which also returns ``z``) and :meth:`merge`.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 2:
            raise ValueError(f"Split needs at least 2 channels, got {channels}")
        self.z_channels = channels // 2
        self.kept_channels = channels - self.z_channels
        self.prior = nn.Conv2d(self.kept_channels, 2 * self.z_channels, 3, padding=1)
        nn.init.zeros_(self.prior.weight)
        nn.init.zeros_(self.prior.bias)

    def prior_params(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the factored-out half given the kept half."""
        mean, log_std = self.prior(kept).chunk(2, dim=1)
        return mean, log_std

    def log_prob(self, z: Tensor, kept: Tensor) -> Tensor:
        """log p(z | kept) in nats, per sample -> (N,)."""
        return gaussian_log_prob(z, *self.prior_params(kept))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(kept, z, log p(z | kept))``."""
        kept, z = x[:, : self.kept_channels], x[:, self.kept_channels :]
        return kept, z, self.log_prob(z, kept)

    def merge(self, kept: Tensor, z: Tensor) -> Tensor:
        """Exact inverse of :meth:`split`: concatenate the halves again."""
        return torch.cat([kept, z], dim=1)

    def sample(self, kept: Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw ``z`` given the kept half: ``mean + temperature * std * eps``."""
        return gaussian_sample(*self.prior_params(kept), temperature, generator)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, _, logp = self.split(x)
        return kept, logp

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        """``cond`` is the factored-out ``z``; if None it is drawn from the conditional prior."""
        z = self.sample(y) if cond is None else cond
        return self.merge(y, z)
