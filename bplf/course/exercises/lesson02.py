"""The checks of notebook 02's exercises: a log-det against autograd's, a flow's log-density."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from bplf import checks
from bplf.course.exercises.checking import (
    _call,
    _diagnose_per_sample,
    _fail,
    _grading,
    _ok,
    _per_sample,
)
from bplf.flows import ActNorm, BiParallelAffineCoupling, InvConv1x1


def check_logdet(fn: Callable[[Tensor], Tensor], logdet_fn: Callable[[Tensor], Tensor],
                 x: Tensor, tol: float = 1e-6,
                 constants: dict[str, float] | None = None) -> None:
    """``logdet_fn(x)`` is log|det J| of the map ``fn`` at every sample of ``x`` (float64),
    compared with autograd's Jacobian. ``constants``: named values an answer may be off by
    (e.g. ``{"the -D log 256 term": ...}``), for a more specific message."""
    with _grading("your log-det"):
        x = x.double()
        got = _per_sample(_call(logdet_fn, x.clone()), len(x), tuple(x.shape), "your log-det")
        ref = checks.jacobian_logdet(fn, x)
        _diagnose_per_sample(got, ref, "your log-det", tol, constants)
    _ok(f"the log-det matches autograd's log|det J| on {len(x)} samples")



def _small_flow(channels: int = 2, seed: int = 0) -> list[nn.Module]:
    torch.manual_seed(seed)
    layers = [ActNorm(channels), InvConv1x1(channels), BiParallelAffineCoupling(channels, 8)]
    layers = [m.double() for m in layers]
    with torch.no_grad():
        layers[0](torch.randn(16, channels, 3, 3, dtype=torch.float64) * 2 + 1)  # data init
        for m in layers:
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return layers


def check_flow_log_prob(fn: Callable[[list, Tensor], Tensor]) -> None:
    """``fn(layers, x)`` is log p(x) of a flow of ``layers`` with a standard normal latent."""
    with _grading("your log_prob"):
        layers = _small_flow()
        x = torch.randn(4, 2, 3, 3, dtype=torch.float64)
        with torch.no_grad():
            z, total = x, torch.zeros(len(x), dtype=torch.float64)
            for layer in layers:
                z, ld = layer(z)
                total = total + ld
            base = torch.distributions.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1)
            ref = base + total
            got = _per_sample(_call(fn, layers, x), len(x), tuple(x.shape), "your log p(x)")
        if torch.allclose(got, base, atol=1e-8):
            _fail("your log p(x) is log p_Z(f(x)) alone: add the log-dets of the layers")
        if torch.allclose(got, base - total, atol=1e-8):
            _fail("you subtracted the log-dets: log p_X(x) = log p_Z(f(x)) + sum of log|det J|")
        d = x[0].numel()
        _diagnose_per_sample(got, ref, "your log p(x)", 1e-8,
                             {"the Gaussian's constant -D/2 log(2 pi)": -d / 2 * math.log(2 *
                                                                                         math.pi)})
    _ok("log p(x) = log N(f(x); 0, I) + the layers' log-dets")
