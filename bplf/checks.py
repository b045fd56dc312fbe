"""Numerical checks of the flow convention, used by the notebooks and the tests.

Every invertible module has ``forward(x, cond=None) -> (y, logdet)`` and
``inverse(y, cond=None) -> x``. These functions check the two promises that convention makes:
the inverse undoes the forward, and ``logdet`` is log|det J| of the forward map.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from bplf.flows import ActNorm, BiParallelAffineCoupling, InvConv1x1, PCALayer


@torch.no_grad()
def round_trip_error(module: nn.Module, x: torch.Tensor, cond=None) -> float:
    """max |inverse(forward(x)) - x|."""
    y, _ = module(x, cond)
    return float((module.inverse(y, cond) - x).abs().max())


def jacobian_logdet(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """log|det J| of ``fn`` (one sample in, its output of the same size out) at each row of x.

    Builds the full D x D Jacobian per sample: use small inputs (D up to a few hundred), float64.
    """
    out = []
    for i in range(len(x)):
        xi = x[i : i + 1]
        jac = torch.autograd.functional.jacobian(
            lambda v, xi=xi: fn(v.view_as(xi)).reshape(-1), xi.reshape(-1), vectorize=True)
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def logdet_error(module: nn.Module, x: torch.Tensor, cond=None) -> float:
    """Largest error of the module's logdet against autograd's log|det J|, relative to
    max(1, |log|det J||)."""
    with torch.no_grad():
        _, logdet = module(x, cond)
    reference = jacobian_logdet(lambda v: module(v, cond)[0], x)
    return float(((logdet - reference).abs() / reference.abs().clamp_min(1.0)).max())


@torch.no_grad()
def density_integral(model: nn.Module, n: int = 20000, inflate: float = 1.3,
                     seed: int = 0) -> tuple[float, float]:
    """Importance-sampling estimate of the integral of exp(log_prob) over R^D, and its standard
    error. A density integrates to 1; a wrong log-det sign or a missing term does not.

    The proposal is a Gaussian fitted to the model's own samples, widened by ``inflate`` so it
    covers the model's tails. Use tiny models (D of a few dozen) in float64.
    """
    g = torch.Generator().manual_seed(seed)
    samples = model.sample(n, generator=g)
    flat = samples.flatten(1)
    mean, cov = flat.mean(0), torch.cov(flat.T) * inflate**2
    proposal = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    torch.manual_seed(seed + 1)
    xq = proposal.sample((n,))
    w = torch.exp(model.log_prob(xq.view(samples.shape)) - proposal.log_prob(xq))
    return float(w.mean()), float(w.std() / math.sqrt(n))


@torch.no_grad()
def layer_round_trips(model: nn.Module, x: torch.Tensor, y=None) -> list[dict]:
    """Where a float32 round trip loses the input: every invertible layer of ``model`` (ActNorm,
    1x1 convolution, coupling, PCA) inverts its own output on the encoding of ``x`` (labels
    ``y`` for a label-conditioned model). One row per layer, in forward order: the worst
    ``local_error`` (max |inverse(forward(h)) - h|) and, for couplings, the smallest scale
    ``min_scale`` and the largest shift ``max_shift`` it applied."""
    seen: list[tuple] = []  # (name, layer, input, cond, output) in forward order
    hooks = [m.register_forward_hook(
                 lambda m, inp, out, name=name: seen.append(
                     (name, m, inp[0], inp[1] if len(inp) > 1 else None, out[0])))
             for name, m in model.named_modules()
             if isinstance(m, (ActNorm, BiParallelAffineCoupling, InvConv1x1, PCALayer))]
    try:
        model.encode(x, y)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, layer, h_in, cond, h_out in seen:
        row = {"layer": name,
               "local_error": float((layer.inverse(h_out, cond) - h_in).abs().max())}
        if isinstance(layer, BiParallelAffineCoupling):
            h_s, t = layer.conditioner(h_in[:, layer.channels_a :], cond)
            row["min_scale"] = float(layer.log_scale(h_s).exp().min())
            row["max_shift"] = float(t.abs().max())
        rows.append(row)
    return rows
