"""ActNorm (Glow): a per-channel affine map initialised from data to zero mean, unit variance."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bplf.flows.base import FlowModule, per_sample


class ActNorm(FlowModule):
    """``y = (x + bias) * exp(log_scale)`` per channel; log|det| = H * W * sum(log_scale).

    The first forward pass (or :meth:`initialize`) sets bias and scale so that the outputs of that
    batch have zero mean and unit variance per channel. Whether this has happened is stored in the
    ``initialized`` buffer, so it travels with the state dict and a loaded model never
    re-initialises itself. (Use :meth:`reset` to re-initialise: the flag is cached in Python.)
    """

    def __init__(self, channels: int, min_std: float = 1e-3):
        super().__init__()
        self.min_std = min_std
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self._known_initialized = False  # caches the buffer: no device sync on every forward

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent init on ``x`` (N, C, H, W); a constant channel's scale is clamped."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, correction=0).clamp_min(self.min_std)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-std.log())
        self.initialized.fill_(True)
        self._known_initialized = True

    def reset(self) -> None:
        """Forget the data-dependent init: the next forward pass initialises again."""
        self.initialized.fill_(False)
        self._known_initialized = False

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self._known_initialized:
            if not bool(self.initialized):
                self.initialize(x)
            self._known_initialized = True
        y = (x + self.bias) * self.log_scale.exp()
        return y, per_sample(x.shape[2] * x.shape[3] * self.log_scale.sum(), x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.bias
