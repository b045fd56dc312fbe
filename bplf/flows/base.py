"""The one convention every invertible module follows, and a container that chains them.

``forward(x, cond=None) -> (y, logdet)`` with ``logdet`` of shape (N,): log|det dy/dx| per sample.
``inverse(y, cond=None) -> x``. ``cond`` is optional side information; most layers ignore it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn


class FlowModule(nn.Module, ABC):
    """An invertible map with a tractable log-determinant (the FrEIA/normflows convention)."""

    @abstractmethod
    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Map ``x`` to ``y``; return ``(y, logdet)`` with ``logdet`` of shape (N,)."""

    @abstractmethod
    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact inverse of :meth:`forward`."""


def per_sample(value: Tensor, x: Tensor) -> Tensor:
    """Broadcast a scalar log-determinant to shape (N,) (same value for every sample)."""
    return value.to(x.dtype) * x.new_ones(x.shape[0])


class FlowSequence(FlowModule):
    """Modules applied in order; log-determinants add up, the inverse runs backwards."""

    def __init__(self, *layers: FlowModule):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> FlowModule:
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y, cond)
        return y


__all__ = ["FlowModule", "FlowSequence", "per_sample"]
