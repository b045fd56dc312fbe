"""Split: factor out half the channels at the end of a scale, with a learned conditional prior."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bplf.flows.base import FlowModule
from bplf.flows.label import null_offset
from bplf.flows.prior import gaussian_log_prob, gaussian_sample


class Split(FlowModule):
    """Keep the first ``C - C//2`` channels, factor out the last ``C//2`` as a latent ``z``.

    ``z`` is modelled by a Gaussian whose mean and log-std come from a zero-initialised 3x3
    convolution of the kept half (so at init it is a standard normal). In the multi-scale
    log-likelihood a factored-out half contributes log p(z | kept): ``forward`` returns that term
    in the ``logdet`` slot, which is how it enters the total, and drops ``z``. A model that must
    reconstruct uses :meth:`split` (which also returns ``z``) and :meth:`merge`.

    With ``num_classes`` > 0 the prior is label-conditioned: a learned, spatially varying offset
    per class (``class_mean``, ``class_log_std``, shape (K, C//2, size, size), zero at init) is
    added to the mean and log-std. Labels ``y`` are (N,) ints; ``y=None`` and the null label
    ``num_classes`` mean no offset (an unconditioned split ignores ``y``). ``forward`` takes
    the labels; ``inverse`` the factored-out ``z`` (drawn when None) and the labels.
    """

    def __init__(self, channels: int, num_classes: int = 0, size: int | None = None):
        super().__init__()
        if channels < 2:
            raise ValueError(f"Split needs at least 2 channels, got {channels}")
        self.z_channels = channels // 2
        self.kept_channels = channels - self.z_channels
        self.prior = nn.Conv2d(self.kept_channels, 2 * self.z_channels, 3, padding=1)
        nn.init.zeros_(self.prior.weight)
        nn.init.zeros_(self.prior.bias)
        self.num_classes = num_classes
        if num_classes > 0:
            if size is None or size < 1:
                raise ValueError("a label-conditioned Split needs the latent's size")
            shape = (num_classes, self.z_channels, size, size)
            self.class_mean = nn.Parameter(torch.zeros(shape))
            self.class_log_std = nn.Parameter(torch.zeros(shape))
        else:
            self.class_mean = self.class_log_std = None

    def prior_params(self, kept: Tensor, y: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the factored-out half given the kept half (and the labels)."""
        mean, log_std = self.prior(kept).chunk(2, dim=1)
        if y is not None and self.class_mean is not None:
            mean = mean + null_offset(self.class_mean, y)
            log_std = log_std + null_offset(self.class_log_std, y)
        return mean, log_std

    def log_prob(self, z: Tensor, kept: Tensor, y: Tensor | int | None = None) -> Tensor:
        """log p(z | kept, y) in nats, per sample -> (N,)."""
        return gaussian_log_prob(z, *self.prior_params(kept, y))

    def split(self, x: Tensor, y: Tensor | int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(kept, z, log p(z | kept, y))``."""
        kept, z = x[:, : self.kept_channels], x[:, self.kept_channels :]
        return kept, z, self.log_prob(z, kept, y)

    def merge(self, kept: Tensor, z: Tensor) -> Tensor:
        """Exact inverse of :meth:`split`: concatenate the halves again."""
        return torch.cat([kept, z], dim=1)

    def sample(self, kept: Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               y: Tensor | int | None = None) -> Tensor:
        """Draw ``z`` given the kept half: ``mean + temperature * std * eps``."""
        return gaussian_sample(*self.prior_params(kept, y), temperature, generator)

    def forward(self, x: Tensor, y: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """``(kept half, log p(z | kept, y))``: the flow convention, the log-prior in the
        ``logdet`` slot."""
        kept, _, logp = self.split(x, y)
        return kept, logp

    def inverse(self, kept: Tensor, z: Tensor | None = None, y: Tensor | int | None = None,
                temperature: float = 1.0) -> Tensor:
        """The full tensor from the kept half and ``z``; ``z=None`` draws it from the prior
        given ``kept`` and the labels ``y`` at ``temperature``."""
        return self.merge(kept, self.sample(kept, temperature, y=y) if z is None else z)
