"""bplf.course.exercises.lesson02, notebook 02's checks: a log-det against autograd's, a flow's log-
density: a right answer passes, each recognised mistake gets its own message."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from bplf.course.exercises.checking import ExerciseError
from bplf.course.exercises.lesson02 import check_flow_log_prob, check_logdet

A, B = 1.5, 0.5


def sa(x):
    return torch.sinh(A * torch.asinh(x) - B)


def sa_log_deriv(x):
    u = A * torch.asinh(x) - B
    return math.log(A) + torch.log(torch.cosh(u)) - 0.5 * torch.log1p(x**2)


def test_check_logdet():
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    check_logdet(sa, lambda v: sa_log_deriv(v).flatten(1).sum(1), x)
    with pytest.raises(ExerciseError, match="sum over every dimension but the batch"):
        check_logdet(sa, sa_log_deriv, x)
    with pytest.raises(ExerciseError, match="do not sum .* over the batch"):
        check_logdet(sa, lambda v: sa_log_deriv(v).sum(), x)
    with pytest.raises(ExerciseError, match="wrong sign"):
        check_logdet(sa, lambda v: -sa_log_deriv(v).flatten(1).sum(1), x)
    with pytest.raises(ExerciseError, match="D log a is missing"):
        check_logdet(sa, lambda v: (sa_log_deriv(v) - math.log(A)).flatten(1).sum(1), x,
                        constants={"D log a": 6 * math.log(A)})
    with pytest.raises(ExerciseError, match="same constant"):
        check_logdet(sa, lambda v: sa_log_deriv(v).flatten(1).sum(1) + 0.3, x)
    with pytest.raises(ExerciseError, match="nan or inf"):
        check_logdet(lambda v: -v**3 - v, lambda v: torch.log(-3 * v**2 - 1).flatten(1).sum(1),
                        x)


def flow_lp(layers, x, sign=1.0, base_only=False, const=True):
    z, total = x, torch.zeros(len(x), dtype=x.dtype)
    for layer in layers:
        z, ld = layer(z)
        total = total + ld
    base = Normal(0.0, 1.0).log_prob(z) if const else -0.5 * z**2
    return base.flatten(1).sum(1) + (0 if base_only else sign * total)


def test_check_flow_log_prob():
    check_flow_log_prob(flow_lp)
    with pytest.raises(ExerciseError, match="add the log-dets"):
        check_flow_log_prob(lambda ls, x: flow_lp(ls, x, base_only=True))
    with pytest.raises(ExerciseError, match="you subtracted the log-dets"):
        check_flow_log_prob(lambda ls, x: flow_lp(ls, x, sign=-1.0))
    with pytest.raises(ExerciseError, match=r"constant -D/2 log\(2 pi\) is missing"):
        check_flow_log_prob(lambda ls, x: flow_lp(ls, x, const=False))
