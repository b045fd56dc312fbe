"""The checks of notebook 03's exercises: the 1x1 convolution's log-det from its LU factors, and
any module against the flow convention (a coupling layer)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from unittest import mock

import torch
from torch import Tensor, nn

from bplf import checks
from bplf.course.exercises.checking import (
    ExerciseError,
    _as_tensor,
    _call,
    _diagnose_per_sample,
    _fail,
    _grading,
    _ok,
    _per_sample,
)
from bplf.flows import InvConv1x1


def _forbid_dense_det() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()

    def refuse(*_, **__):
        raise ExerciseError("use the LU factors (conv.log_s), not a dense determinant: that is "
                            "the O(C^3) computation the factorisation avoids")

    for target in ("torch.linalg.slogdet", "torch.linalg.det", "torch.det", "torch.slogdet",
                   "torch.logdet", "torch.linalg.lu", "torch.linalg.lu_factor"):
        stack.enter_context(mock.patch(target, refuse))
    return stack


def check_lu_logdet(fn: Callable) -> None:
    """``fn(conv, height, width)`` is log|det J| of an ``InvConv1x1`` on (., C, height, width)
    inputs, from its LU factors."""
    with _grading("your lu_logdet"):
        torch.manual_seed(1)
        conv = InvConv1x1(4).double()
        with torch.no_grad():
            for p in conv.parameters():
                p.add_(0.3 * torch.randn_like(p))
        h, w = 3, 5
        ref = h * w * torch.linalg.slogdet(conv.weight().detach())[1]
        with _forbid_dense_det():
            got = _call(fn, conv, h, w)
        got = _as_tensor(got, "your log-det")
        if got.numel() != 1:
            _fail(f"return one number (a 0-d tensor or float), got shape {tuple(got.shape)}: the "
                  "1x1 convolution's log-det is the same for every sample")
        got = got.reshape(())
        if torch.isclose(got, ref / (h * w)):
            _fail("that is log|det W|: the same W acts at every pixel, so multiply by H * W")
        if torch.isclose(got, conv.log_s.detach().exp().prod() * h * w) or torch.isclose(
                got, conv.log_s.detach().exp().sum() * h * w):
            _fail("use log|s| (conv.log_s holds it already), not s itself")
        if not torch.isclose(got, ref, rtol=1e-8, atol=1e-8):
            _fail(f"your log-det {got.item():.6f} should be {ref.item():.6f} = H * W * "
                  "log|det W|; with W = P L (U + diag(s)), log|det W| = sum log|s|")
    _ok(f"H * W * sum(log|s|) = {ref.item():.4f} = H * W * log|det W|, without a determinant")



def check_invertible_module(module: nn.Module, x: Tensor, cond: Tensor | None = None,
                            tol: float = 1e-8, require_change: bool = True) -> None:
    """``module`` follows the flow convention on ``x`` (small, float64 is best): ``forward(x,
    cond) -> (y, logdet)`` with y of x's shape and one logdet per sample, ``inverse`` undoes
    ``forward`` (both ways), and logdet is autograd's log|det J|."""
    with _grading("your module"):
        module = module.double() if x.dtype == torch.float64 else module
        with torch.no_grad():
            out = _call(module, x, cond)
        if not (isinstance(out, tuple) and len(out) == 2):
            _fail("forward must return a pair (y, logdet), like every bplf module")
        y, logdet = out
        if not isinstance(y, Tensor) or y.shape != x.shape:
            _fail(f"y should have x's shape {tuple(x.shape)}, got "
                  f"{tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}: an "
                  "invertible map keeps the number of dimensions (did you drop a half?)")
        logdet = _per_sample(logdet, len(x), tuple(x.shape), "the log-det forward returns")
        if require_change and torch.allclose(y, x):
            _fail("forward returns its input unchanged: the layer must transform x")
        with torch.no_grad():
            back = _call(module.inverse, y, cond)
        if not isinstance(back, Tensor) or back.shape != x.shape:
            _fail("inverse(y) should return a tensor of x's shape")
        err = float((back - x).abs().max())
        if err > tol:
            _fail(f"inverse(forward(x)) differs from x by up to {err:.2e}: the inverse must undo "
                  "each step of forward in reverse order (subtract the shift forward adds, divide "
                  "by the scale it multiplies), computing s and t from the half that forward left "
                  "unchanged")
        y2 = y + 0.1 * torch.randn_like(y)
        with torch.no_grad():
            err2 = float((_call(module, _call(module.inverse, y2, cond), cond)[0] - y2).abs().max())
        if err2 > max(tol, 1e-6):
            _fail(f"forward(inverse(y)) differs from y by up to {err2:.2e}: inverse undoes forward "
                  "only on forward's outputs; invert each operation exactly")
        ref = checks.jacobian_logdet(lambda v: module(v, cond)[0], x)
        _diagnose_per_sample(logdet.double(), ref, "the log-det forward returns", 1e-6)
    _ok(f"round trip error {err:.1e}, log-det matches autograd on {len(x)} samples")
