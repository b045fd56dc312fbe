"""Tweedie's formula on a 1-D Gaussian mixture (notebook 04, section 7).

A model of *noisy* data, p_sigma = p * N(0, sigma^2), knows the posterior mean of the clean
value: E[x | y] = y + sigma^2 d/dy log p_sigma(y) (Tweedie's formula). For a Gaussian mixture
both sides are known in closed form, so the notebook can check the one denoising step that
``bplf.model.BPLF.denoise`` takes with a flow's own gradient against the exact answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Mixture:
    """A 1-D Gaussian mixture: component weights (summing to 1), means and standard deviations."""

    weights: tuple[float, ...] = (0.3, 0.5, 0.2)
    means: tuple[float, ...] = (-0.3, 0.05, 0.35)
    stds: tuple[float, ...] = (0.04, 0.08, 0.03)

    def _params(self, sigma: float) -> tuple[Tensor, Tensor, Tensor]:
        w, m, s = (torch.tensor(v, dtype=torch.float64) for v in
                   (self.weights, self.means, self.stds))
        return w, m, torch.sqrt(s**2 + sigma**2)

    def log_prob(self, y: Tensor, sigma: float = 0.0) -> Tensor:
        """log p_sigma(y): the mixture convolved with N(0, sigma^2) (each variance + sigma^2)."""
        w, m, s = self._params(sigma)
        comp = torch.distributions.Normal(m, s).log_prob(y[..., None]) + w.log()
        return torch.logsumexp(comp, -1)

    def sample(self, n: int, sigma: float = 0.0, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``n`` clean draws x and their noisy versions y = x + sigma * eps."""
        gen = torch.Generator().manual_seed(seed)
        w, m, s = self._params(0.0)
        k = torch.multinomial(w, n, replacement=True, generator=gen)
        x = m[k] + s[k] * torch.randn(n, generator=gen, dtype=torch.float64)
        return x, x + sigma * torch.randn(n, generator=gen, dtype=torch.float64)

    def posterior_mean(self, y: Tensor, sigma: float) -> Tensor:
        """E[x | y] exactly: each component's Gaussian posterior mean, m_k + s_k^2 / (s_k^2 +
        sigma^2) (y - m_k), weighted by the component's responsibility for y under p_sigma."""
        w, m, s = self._params(0.0)
        total = s**2 + sigma**2
        comp = torch.distributions.Normal(m, total.sqrt()).log_prob(y[..., None]) + w.log()
        resp = torch.softmax(comp, -1)
        return (resp * (m + s**2 / total * (y[..., None] - m))).sum(-1)


def tweedie(log_prob, y: Tensor, sigma: float) -> Tensor:
    """One Tweedie step, y + sigma^2 grad log p_sigma(y), with autograd: ``log_prob`` is the
    density of the noisy values (what a model trained on noisy data learns)."""
    y = y.detach().requires_grad_(True)
    (score,) = torch.autograd.grad(log_prob(y).sum(), y)
    return (y + sigma**2 * score).detach()


def check(mixture: Mixture, sigma: float, n: int = 200_000, seed: int = 0) -> dict:
    """Notebook 04's check: ``gap``, the largest difference between one Tweedie step and the exact
    posterior mean on a grid of noisy values; ``mse_noisy`` and ``mse_denoised``, the mean squared
    error to the clean values of ``n`` simulated pairs, before and after the step."""
    y = torch.linspace(-0.5, 0.5, 401, dtype=torch.float64)
    noisy_density = lambda v: mixture.log_prob(v, sigma)  # noqa: E731
    gap = (tweedie(noisy_density, y, sigma) - mixture.posterior_mean(y, sigma)).abs().max()
    clean, noisy = mixture.sample(n, sigma, seed)
    denoised = tweedie(noisy_density, noisy, sigma)
    return {"gap": float(gap), "mse_noisy": float(((noisy - clean) ** 2).mean()),
            "mse_denoised": float(((denoised - clean) ** 2).mean())}
