"""Numerical checks of the flow convention, used by the notebooks and the tests.

Every invertible module has ``forward(x, cond=None) -> (y, logdet)`` and
``inverse(y, cond=None) -> x``. These functions check the two promises that convention makes:
the inverse undoes the forward, and ``logdet`` is log|det J| of the forward map.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def round_trip_error(module: nn.Module, x: torch.Tensor, cond=None) -> float:
    """max |inverse(forward(x)) - x|."""
    y, _ = module(x, cond)
    return float((module.inverse(y, cond) - x).abs().max())


def autograd_logdet(module: nn.Module, x: torch.Tensor, cond=None) -> torch.Tensor:
    """log|det J| of ``module``'s forward map at each sample of ``x``, from the full Jacobian.

    Costs one Jacobian of size D x D per sample: use small inputs (D up to a few hundred).
    """
    out = []
    for i in range(len(x)):
        xi = x[i : i + 1]
        c = None if cond is None else cond[i : i + 1]

        def f(flat: torch.Tensor, xi=xi, c=c) -> torch.Tensor:
            return module(flat.view_as(xi), c)[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, xi.reshape(-1))
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def logdet_error(module: nn.Module, x: torch.Tensor, cond=None) -> float:
    """Largest relative error between the module's logdet and autograd's log|det J|."""
    with torch.no_grad():
        _, logdet = module(x, cond)
    reference = autograd_logdet(module, x, cond)
    return float(((logdet - reference).abs() / reference.abs().clamp_min(1.0)).max())
