"""Gaussian priors: the class-conditional prior over the top latent of the flow."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bplf.flows.label import check_labels, null_offset

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(z; mean, exp(log_std)^2) of a diagonal Gaussian, summed per sample -> (N,)."""
    lp = -0.5 * LOG_2PI - log_std - 0.5 * ((z - mean) * torch.exp(-log_std)) ** 2
    return lp.flatten(1).sum(1)


def gaussian_sample(mean: Tensor, log_std: Tensor, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """``mean + temperature * std * eps`` with eps ~ N(0, I): lower temperatures, typical faces."""
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                      device=generator.device if generator is not None else mean.device)
    return mean + temperature * log_std.exp() * eps.to(mean.device)


class ClassConditionalPrior(nn.Module):
    """Diagonal Gaussian over the top latent, with a learned mean and log-std per class.

    ``mean(y) = base_mean + class_mean[y]`` and ``log_std(y) = base_log_std + class_log_std[y]``
    (Glow's class-conditional prior, here with one value per latent entry). Everything starts at
    zero, so at initialisation the prior is a standard normal. With ``y=None`` (and always when
    ``num_classes == 0``) the prior is the shared base Gaussian alone: a proper, learned density,
    trained by every conditional step since each class prior is an offset from it. (It is *not*
    the class mixture p(x) = sum_k p(k) p(x | k); compute that from per-class log-probabilities.)

    With ``null_label`` the label ``num_classes`` is accepted too: the null label
    (``bplf.flows.label``), the base Gaussian for that sample.
    """

    def __init__(self, shape: tuple[int, int, int], num_classes: int = 0,
                 null_label: bool = False):
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.shape = tuple(shape)
        self.num_classes = num_classes
        self.null_label = bool(null_label)
        self.base_mean = nn.Parameter(torch.zeros(1, *shape))
        self.base_log_std = nn.Parameter(torch.zeros(1, *shape))
        self.class_mean = nn.Parameter(torch.zeros(num_classes, *shape))
        self.class_log_std = nn.Parameter(torch.zeros(num_classes, *shape))

    def labels(self, y: Tensor | int | None, n: int | None = None) -> Tensor | None:
        """``y`` checked as labels of this prior (``bplf.flows.label.check_labels``)."""
        return check_labels(y, self.num_classes, self.null_label, n, self.base_mean.device)

    def params(self, y: Tensor | int | None = None) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the top latent: shape (N, C, H, W) for N labels, (1, C, H, W)
        for one int label or for ``y=None`` (the base Gaussian)."""
        y = self.labels(y)
        if y is None:
            return self.base_mean, self.base_log_std
        return (self.base_mean + null_offset(self.class_mean, y),
                self.base_log_std + null_offset(self.class_log_std, y))

    def log_prob(self, z: Tensor, y: Tensor | int | None = None) -> Tensor:
        """log p(z | y) in nats, per sample -> (N,)."""
        mean, log_std = self.params(self.labels(y, len(z)))
        return gaussian_log_prob(z, mean, log_std)

    def sample(self, n: int, y: Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """``n`` top latents drawn at ``temperature``, of class ``y`` (None, int or (n,) labels)."""
        mean, log_std = self.params(self.labels(y, n))
        mean, log_std = mean.expand(n, *self.shape), log_std.expand(n, *self.shape)
        return gaussian_sample(mean, log_std, temperature, generator)
