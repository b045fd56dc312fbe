"""The checks of notebook 04's exercises: bits per dimension, a training step; and the tiny model
and images the checks of notebooks 04 and 05 run answers on."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from bplf.course.exercises.checking import _call, _fail, _grading, _ok
from bplf.likelihood import NUM_BINS, bpd_from_log_prob
from bplf.model import build_model


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A small random BPLF (8x8 images, 7 classes) with every zero-initialised weight randomised:
    the model the checks of notebooks 04 and 05 run answers on."""
    torch.manual_seed(seed)
    model = build_model("bplf", image_size=8, levels=2, steps_per_level=1, hidden_channels=8)
    model = model.to(dtype)
    model.initialize(tiny_images(512, seed).to(dtype))
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return model


def tiny_images(n: int, seed: int = 0) -> Tensor:
    """Smooth 8x8 toy images, dequantised to [-0.5, 0.5) (float32, (n, 1, 8, 8))."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(n, 1, 10, 10, generator=g), 3, 1)
    u = (base * 255).floor()
    return ((u + torch.rand(u.shape, generator=g)) / NUM_BINS - 0.5).float()


def check_bpd(fn: Callable, model: nn.Module | None = None, x: Tensor | None = None,
              y: Tensor | None = None) -> None:
    """``fn(model, x, y)`` is the mean bits per dimension of dequantised images ``x`` of 8-bit
    data: ``(-log p(x) + D ln 256) / (D ln 2)``; diagnoses the usual mistakes."""
    with _grading("your bits per dimension"):
        model = tiny_model() if model is None else model
        x = tiny_images(16, seed=1) if x is None else x
        y = torch.arange(len(x)) % 7 if y is None else y
        d = x[0].numel()
        with torch.no_grad():
            ref = float(bpd_from_log_prob(model.log_prob(x, y).double(), d).mean())
            got = _call(fn, model, x, y)
        if isinstance(got, Tensor) and got.numel() > 1:
            _fail(f"return one number, the mean over the images, not shape {tuple(got.shape)}")
        got = float(got)
        close = lambda a, b: math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)  # noqa: E731
        bits = math.log2(NUM_BINS)
        cases = [
            (ref - bits, "your bpd is exactly 8 bits too low: did you forget the dequantisation "
                         "term? Add D log 256 to -log p(x): the 1/256 scaling of the images "
                         "contributes -D log 256 to log p"),
            (ref + bits, "your bpd is exactly 8 bits too high: the D log 256 term has the wrong "
                         "sign; bpd = (-log p(x) + D log 256) / (D log 2)"),
            (ref * math.log(2), "your bpd is ln 2 times the right value: that is nats per "
                                "dimension; divide by log 2 as well (bits = nats / ln 2)"),
            ((ref - bits) * math.log(2), "you are in nats and the D log 256 term is missing: "
                                         "bpd = (-log p(x) + D log 256) / (D log 2)"),
            (ref * d, f"your value is D = {d} times too large: divide by the number of "
                      "dimensions (per dimension, not per image)"),
            (ref * d * math.log(2), "that is the negative log-likelihood per image in nats: "
                                    "add D log 256, then divide by D log 2"),
            (2 * bits - ref, "the sign of log p is flipped: bpd uses -log p(x)"),
        ]
        if not close(got, ref):
            for value, message in cases:
                if close(got, value):
                    _fail(message)
            _fail(f"your bpd {got:.5f} should be {ref:.5f}: bpd = (-log p(x) + D log 256) / "
                  "(D log 2), averaged over the images, with x used as given")
    _ok(f"{got:.4f} bits per dimension, as bplf.likelihood computes it")


def check_train_step(fn: Callable, lr: float = 1e-2) -> None:
    """``fn(model, optimizer, x, y)`` takes one maximum-likelihood step in bits per dimension
    and returns the loss (the batch's bpd before the step) as a float."""
    with _grading("your train_step"):
        x, y = tiny_images(16, seed=2), torch.arange(16) % 7
        d = x[0].numel()
        mine, ref = tiny_model(seed=3), tiny_model(seed=3)
        opt_mine = torch.optim.Adam(mine.parameters(), lr=lr)
        opt_ref = torch.optim.Adam(ref.parameters(), lr=lr)
        losses_ref, params_ref = [], []
        for _ in range(3):
            opt_ref.zero_grad()
            loss = bpd_from_log_prob(ref.log_prob(x, y), d).mean()
            loss.backward()
            opt_ref.step()
            losses_ref.append(loss.item())
            params_ref.append([p.detach().clone() for p in ref.parameters()])

        def distance(k: int) -> float:
            return max(float((p.detach() - q).abs().max())
                       for p, q in zip(mine.parameters(), params_ref[k], strict=True))

        before = [p.detach().clone() for p in mine.parameters()]
        got = _call(fn, mine, opt_mine, x, y)
        if isinstance(got, Tensor):
            if got.requires_grad:
                _fail("return the loss as a float (loss.item()): a tensor that requires grad "
                      "keeps the whole graph alive")
            got = float(got)
        if not isinstance(got, float):
            _fail(f"return the loss as a float, got {type(got).__name__}")
        if not math.isclose(got, losses_ref[0], rel_tol=1e-4):
            ratio = got / losses_ref[0]
            hint = " (that is nats, not bits)" if math.isclose(ratio, math.log(2), rel_tol=1e-3) \
                else ""
            _fail(f"your loss {got:.5f} should be the batch's bpd before the step, "
                  f"{losses_ref[0]:.5f}{hint}: the objective is -log p(x | y) in bits per "
                  "dimension (bplf.likelihood.bpd_from_log_prob), averaged over the batch")
        moved = any(not torch.equal(b, p) for b, p in zip(before, mine.parameters(), strict=True))
        if not moved:
            _fail("the parameters did not change: call loss.backward() and optimizer.step()")
        with torch.no_grad():
            after = float(bpd_from_log_prob(mine.log_prob(x, y), d).mean())
        if after > got:
            _fail("the loss went up after your step: minimise -log p (the bpd), not log p")
        if distance(0) > 1e-5:
            _fail("your step moved the parameters differently from the reference step: "
                  "backpropagate the mean bpd of the batch, then call optimizer.step() once")
        _call(fn, mine, opt_mine, x, y)
        _call(fn, mine, opt_mine, x, y)
        if distance(2) > 1e-5:
            _fail("your first step is right but the next ones differ: gradients accumulate "
                  "across calls unless you call optimizer.zero_grad() before loss.backward()")
    _ok(f"three steps took the batch's bpd from {losses_ref[0]:.3f} to {losses_ref[2]:.3f}, "
        "as the reference trainer does")
