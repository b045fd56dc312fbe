"""Grading helpers for the course's exercises: checks that say what is wrong, not just that it is.

Every exercise of the notebooks is a function or class a student completes; its check cell calls
one ``check_*`` function below. A check returns quietly (printing one line) when the answer is
right and raises :class:`ExerciseError`, an ``AssertionError``, with a message that names the
likely mistake and how to fix it. An unsolved exercise (nbgrader's stub raises
``NotImplementedError``) fails with "not written yet".

The checks build their own small inputs (a tiny random BPLF of 8x8 images, a few faces), so they
run in a second and do not depend on the rest of the notebook.
"""

from __future__ import annotations

import contextlib
import linecache
import math
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, NoReturn
from unittest import mock

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bplf import checks
from bplf.data import EMOTIONS
from bplf.likelihood import NUM_BINS, bpd_from_log_prob


class ExerciseError(AssertionError):
    """A check of an exercise failed; the message says what is wrong and hints at the fix.

    In a notebook it shows as the message and the lines of the student's cells it came from
    (IPython's ``_render_traceback_``), never the checker's source, which holds the reference
    answer; nor do the student's feedback copies that grading writes."""

    def _render_traceback_(self) -> list[str]:
        where = _cell_frames(self.__traceback__)
        if self.__cause__ is not None:  # the student's code crashed: where, in their cells
            where += _cell_frames(self.__cause__.__traceback__)
        return [f"{type(self).__name__}: {self}", *(["in your notebook:"] if where else []),
                *where]


def _cell_frames(tb: TracebackType | None) -> list[str]:
    """The frames of ``tb`` that run a notebook cell's code, as 'Cell In[5], line 3, in f' and
    the line: a traceback without the checker's (or any package's) frames."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return []
    out = []
    for frame in traceback.extract_tb(tb):
        label = shell.compile.format_code_name(frame.filename)
        if label is not None:
            out.append(f"  {label[0]} {label[1]}, line {frame.lineno}, in {frame.name}")
            out.append(f"    {linecache.getline(frame.filename, frame.lineno).strip()}")
    return out


def _fail(message: str) -> NoReturn:
    raise ExerciseError(message)


@contextlib.contextmanager
def _grading(what: str) -> Iterator[None]:
    """Turn the stub's NotImplementedError into a readable failure; keep the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        except NotImplementedError:
            raise ExerciseError(f"{what} is not written yet: replace `raise "
                                "NotImplementedError()` with your code") from None
        except ExerciseError:
            raise
        except Exception as err:  # the answer broke the check: say so, not where in the checker
            raise ExerciseError(f"the check could not use {what}'s result: "
                                f"{type(err).__name__}: {err}") from None


def _call(fn: Callable, *args, **kwargs) -> Any:
    """Call the student's code; errors other than the stub's are reported as such."""
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, ExerciseError):
        raise
    except Exception as err:  # the student's code crashed: say where it came from
        raise ExerciseError(f"your code raised {type(err).__name__}: {err}") from err


def _ok(message: str) -> None:
    print(f"Correct: {message}")


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, (float, int)):
        return torch.tensor(float(value), dtype=torch.float64)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        _fail(f"{what} should be a tensor, got {type(value).__name__}")
    return value.detach().double()


def _per_sample(value: Any, n: int, x_shape: tuple[int, ...], what: str) -> Tensor:
    """A (n,) tensor, or a failure that explains the shape mistake."""
    value = _as_tensor(value, what)
    if value.shape == (n,):
        return value
    if value.ndim == 0:
        _fail(f"{what} is a single number; it should hold one value per sample, shape ({n},): "
              "do not sum (or average) over the batch")
    if tuple(value.shape) == tuple(x_shape) or (value.ndim > 1 and value.shape[0] == n):
        _fail(f"{what} has shape {tuple(value.shape)}; it should be one number per sample, "
              f"shape ({n},): sum over every dimension but the batch (e.g. .flatten(1).sum(1))")
    _fail(f"{what} has shape {tuple(value.shape)}; expected ({n},), one number per sample")


def _diagnose_per_sample(got: Tensor, ref: Tensor, what: str, tol: float,
                         constants: dict[str, float] | None = None) -> None:
    """Fail with the most specific reason ``got`` differs from ``ref`` (both (N,))."""
    scale = ref.abs().clamp_min(1.0)
    err = ((got - ref).abs() / scale).max().item()
    if err <= tol:
        return
    if not torch.isfinite(got).all():
        _fail(f"{what} contains nan or inf: a log of a negative or zero number? Take the "
              "absolute value of the derivative (log|f'|), and check for a division by zero")
    if torch.allclose(got, -ref, rtol=tol, atol=tol):
        _fail(f"{what} has the wrong sign: you returned -log|det J| (the inverse's log-det)")
    diff = got - ref
    if len(diff) > 1 and (diff - diff.mean()).abs().max() < tol * max(1.0, diff.abs().max()):
        c = float(diff.mean())
        for name, value in (constants or {}).items():
            for sign, word in ((1, "extra"), (-1, "missing")):
                if math.isclose(c, sign * value, rel_tol=1e-4, abs_tol=1e-6):
                    _fail(f"{what} is off by {c:+.4f} for every sample: {name} is {word}")
        _fail(f"{what} is off by the same constant, {c:+.4f}, for every sample: a term that does "
              "not depend on x is missing or extra (the log of a constant factor?)")
    ratio = (got / ref).mean().item() if ref.abs().min() > 0 else float("nan")
    if len(ref) > 1 and torch.allclose(got, ratio * ref, rtol=tol, atol=tol):
        _fail(f"{what} is {ratio:.4g} times the right value for every sample: a constant factor "
              "is missing or extra")
    i = int(((got - ref).abs() / scale).argmax())
    _fail(f"{what} is wrong: sample {i} gives {got[i].item():.6f}, the right value is "
          f"{ref[i].item():.6f}")


# ---------------------------------------------------------------------------------------------
# generic checks: a log-det, an invertible module
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# 01: a reader for a new label scheme, and a split by person
# ---------------------------------------------------------------------------------------------
#: RAF-DB's basic-emotion codes (``list_patition_label.txt``): 1..7, in its own order.
RAFDB_CODES: dict[int, str] = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad",
                               6: "angry", 7: "neutral"}


def _raf_reference(text: str) -> list[tuple[str, str, int]]:
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, code = line.split()
        rows.append((name, name.split("_")[0], EMOTIONS.index(RAFDB_CODES[int(code)])))
    return rows


RAFDB_SAMPLE = ("train_00001.jpg 5\ntrain_00002.jpg 1\n  train_00003.jpg 4 \n\n"
                "train_00004.jpg 7\ntest_0001.jpg 2\ntest_0002.jpg 6\ntest_0003.jpg 3\n"
                "test_0004.jpg 4\n")


def check_label_reader(fn: Callable[[str], list], text: str = RAFDB_SAMPLE) -> None:
    """``fn(text)`` reads RAF-DB's label list into ``(file name, split, emotion index)`` rows."""
    with _grading("your reader"):
        ref = _raf_reference(text)
        got = _call(fn, text)
        if not isinstance(got, list):
            _fail(f"return a list of (file name, split, emotion index) tuples, got "
                  f"{type(got).__name__}")
        if len(got) != len(ref):
            _fail(f"{len(got)} rows for {len(ref)} labelled files: skip blank lines, and read "
                  "one row per non-blank line")
        for g, r in zip(got, ref, strict=True):
            if not (isinstance(g, tuple | list) and len(g) == 3):
                _fail(f"each row should be a (file name, split, emotion index) tuple, got {g!r}")
            name, split, label = g
            if name != r[0]:
                _fail(f"file name {name!r} should be {r[0]!r}: strip the whitespace around it")
            if split != r[1]:
                _fail(f"{r[0]}: split {split!r} should be {r[1]!r}, the file name's prefix "
                      "before the underscore")
            if isinstance(label, str):
                _fail(f"{r[0]}: the label should be an index into bplf.data.EMOTIONS (an int), "
                      f"not the name {label!r}: use EMOTIONS.index(name)")
            if label != r[2]:
                code = int(next(ln for ln in text.splitlines() if r[0] in ln).split()[1])
                if label == code or label == code - 1:
                    _fail(f"{r[0]} has RAF-DB code {code} ({RAFDB_CODES[code]}), you returned "
                          f"{label} ({EMOTIONS[label] if 0 <= label < 7 else '?'}): RAF-DB's "
                          "codes are in its own order, not FER-2013's; map each code to its "
                          "name first, then to our index")
                _fail(f"{r[0]} (code {code}) is {RAFDB_CODES[code]!r}, index {r[2]} in EMOTIONS; "
                      f"you returned {label}")
    _ok(f"{len(ref)} labels read, every code mapped to the right emotion")


def _split_reference(subjects: np.ndarray) -> dict[str, int]:
    people = len(set(subjects))
    n_val = n_test = round(0.15 * people)
    return {"train": people - n_val - n_test, "val": n_val, "test": n_test}


def check_subject_split(fn: Callable[..., np.ndarray]) -> None:
    """``fn(subjects, seed)`` splits faces 70/15/15 by person: no person in two splits."""
    with _grading("your split"):
        rng = np.random.default_rng(0)
        subjects = np.array([f"S{p:03d}" for p in rng.integers(0, 40, 400)])
        split = np.asarray(_call(fn, subjects, seed=0))
        if split.shape != subjects.shape:
            _fail(f"return one split name per face, shape {subjects.shape}; got {split.shape}")
        names = set(split.tolist())
        if not names <= {"train", "val", "test"}:
            _fail(f"splits should be 'train', 'val' and 'test', got {sorted(names)}")
        for person in np.unique(subjects):
            where = set(split[subjects == person].tolist())
            if len(where) > 1:
                _fail(f"person {person} has faces in {sorted(where)}: shuffle and split the "
                      "people (np.unique(subjects)), then give every face its person's split")
        people = {s: len(set(subjects[split == s])) for s in ("train", "val", "test")}
        want = _split_reference(subjects)
        if any(abs(people[s] - want[s]) > 1 for s in want):
            _fail(f"people per split {people}; 70/15/15 of {len(set(subjects))} people is about "
                  f"{want}: the fractions apply to people, not faces")
        again = np.asarray(_call(fn, subjects, seed=0))
        if not np.array_equal(split, again):
            _fail("two calls with the same seed gave different splits: draw the permutation "
                  "from np.random.default_rng(seed), not from global state")
        other = np.asarray(_call(fn, subjects, seed=1))
        if np.array_equal(split, other):
            _fail("seeds 0 and 1 gave the same split: the seed should choose the permutation")
    _ok(f"no person in two splits; people per split {people}")


# ---------------------------------------------------------------------------------------------
# 02: a flow's log-density
# ---------------------------------------------------------------------------------------------
def _small_flow(channels: int = 2, seed: int = 0) -> list[nn.Module]:
    from bplf.flows import ActNorm, BiParallelAffineCoupling, InvConv1x1

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


# ---------------------------------------------------------------------------------------------
# 03: the LU log-det, a coupling layer (check_invertible_module)
# ---------------------------------------------------------------------------------------------
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
    from bplf.flows import InvConv1x1

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


# ---------------------------------------------------------------------------------------------
# 04: bits per dimension, a training step
# ---------------------------------------------------------------------------------------------
def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A small random BPLF (8x8 images, 7 classes) with every zero-initialised weight randomised:
    the model the checks of notebooks 04 and 05 run answers on."""
    from bplf.model import build_model

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


# ---------------------------------------------------------------------------------------------
# 05: interpolation and an edit by re-expressing the top prior
# ---------------------------------------------------------------------------------------------
def check_interpolation(fn: Callable) -> None:
    """``fn(model, x_a, x_b, steps)`` decodes ``steps`` points on the line between the latents
    of two faces (endpoints included) -> (steps, C, H, W)."""
    from bplf.editing import interpolate

    with _grading("your interpolation"):
        model = tiny_model(seed=4)
        faces = tiny_images(2, seed=5)
        steps = 5
        with torch.no_grad():
            ref = interpolate(model, faces[0], faces[1], steps=steps)
            got = _as_tensor(_call(fn, model, faces[:1], faces[1:], steps), "your path")
        ref = ref.double()
        if got.shape != ref.shape:
            _fail(f"return the {steps} decoded faces as one tensor of shape {tuple(ref.shape)}, "
                  f"got {tuple(got.shape)} (endpoints included: torch.linspace(0, 1, steps))")
        pixels = faces[:1].double() + torch.linspace(0, 1, steps, dtype=torch.float64).view(
            -1, 1, 1, 1) * (faces[1:] - faces[:1]).double()
        if (got - pixels).abs().max() < 1e-4:
            _fail("that is a cross-fade in pixel space: encode both faces, interpolate every "
                  "latent (model.encode returns a list), then decode")
        with torch.no_grad():
            za, zb = model.encode(faces[:1]), model.encode(faces[1:])
            t = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
            top_only = model.decode([a.expand(steps, *a.shape[1:]) for a in za[:-1]]
                                    + [za[-1] + t * (zb[-1] - za[-1])]).double()
        if (got - top_only).abs().max() < 1e-4:
            _fail("you interpolated the top latent only: interpolate every entry of the list "
                  "model.encode returns, the factored-out latents too, then decode")
        if (got[0] - ref[0]).abs().max() > 1e-4 or (got[-1] - ref[-1]).abs().max() > 1e-4:
            _fail("the path should start at x_a and end at x_b (decode(encode(x)) = x): include "
                  "both endpoints, t = 0 and t = 1")
        if (got - ref).abs().max() > 1e-4:
            _fail("the path differs from the latent interpolation: points a + t (b - a) for t "
                  "evenly spaced from 0 to 1, on every latent, then decode")
    _ok(f"{steps} faces on the straight line between the two latents")


def check_prior_edit(fn: Callable) -> None:
    """``fn(model, x, source, target)`` re-expresses faces of emotion ``source`` as ``target``
    by swapping the class of the top latent's prior (``edit_expression(method="prior")``)."""
    from bplf.editing import edit_expression

    with _grading("your edit"):
        model = tiny_model(seed=6)
        with torch.no_grad():
            model.top_prior.class_log_std.normal_(0, 0.3)
            model.top_prior.class_mean.normal_(0, 0.5)
        x = tiny_images(3, seed=7)
        source, target = 3, 5
        with torch.no_grad():
            ref = edit_expression(model, x, source, target, 1.0, method="prior").double()
            back = edit_expression(model, x, target, source, 1.0, method="prior").double()
            got = _as_tensor(_call(fn, model, x, source, target), "your edit")
            zs = model.encode(x)
            mu_s, _ = model.top_prior.params(source)
            mu_t, _ = model.top_prior.params(target)
            shifted = model.decode([*zs[:-1], zs[-1] + mu_t - mu_s]).double()
        if got.shape != ref.shape:
            _fail(f"return the edited faces, shape {tuple(ref.shape)} (decode the moved latents),"
                  f" got {tuple(got.shape)}")
        if (got - x.double()).abs().max() < 1e-5:
            _fail("your edit returns the input faces: move the top latent to the target's prior")
        if (got - back).abs().max() < 1e-4:
            _fail("you moved from the target to the source: standardise under the source's prior,"
                  " then re-express under the target's")
        if (got - shifted).abs().max() < 1e-4:
            _fail("you shifted the mean only: also rescale by sigma_target / sigma_source, "
                  "z' = mu_t + exp(log_t - log_s) * (z - mu_s)")
        if (got - ref).abs().max() > 1e-4:
            _fail("the edited faces differ from the re-expressed ones: move only the top latent "
                  "(the last entry of model.encode's list), z' = mu_t + sigma_t / sigma_s * "
                  "(z - mu_s), keep the other latents, and decode")
    _ok("the edit re-expresses the faces under the target emotion's prior")


# ---------------------------------------------------------------------------------------------
# 06: the noise rule and a verdict
# ---------------------------------------------------------------------------------------------
def seed_results(seed: int = 0) -> pd.DataFrame:
    """Toy final val bpd of five configs over three seeds (columns config, seed, value), built so
    that each verdict and each rule mistake shows."""
    rng = np.random.default_rng(seed)
    means = {"claimed": 5.78, "close": 5.795, "worse": 6.10, "noisy": 5.70, "better": 5.60}
    spread = {"claimed": 0.01, "close": 0.03, "worse": 0.02, "noisy": 0.25, "better": 0.01}
    rows = []
    for config, mean in means.items():
        noise = rng.normal(0, 1, 3)
        noise = (noise - noise.mean()) / noise.std(ddof=1)
        rows += [{"config": config, "seed": s, "value": mean + spread[config] * noise[s]}
                 for s in range(3)]
    return pd.DataFrame(rows)


def check_compare(fn: Callable) -> None:
    """``fn(values, a, b)`` -> dict with ``diff`` (mean a minus mean b), ``se`` (its standard
    error from the seed spread) and ``within_noise`` (|diff| < 2 se)."""
    from bplf.research.stats import compare

    with _grading("your compare"):
        values = seed_results()
        for a, b in (("claimed", "close"), ("claimed", "worse"), ("claimed", "noisy")):
            ref = compare(values, a, b)
            got = _call(fn, values.copy(), a, b)
            if not isinstance(got, dict) or not {"diff", "se", "within_noise"} <= set(got):
                _fail("return a dict with keys 'diff', 'se' and 'within_noise'")
            if math.isclose(got["diff"], -ref["diff"], rel_tol=1e-6):
                _fail(f"{a} vs {b}: diff has the wrong sign: mean of a minus mean of b")
            if not math.isclose(got["diff"], ref["diff"], rel_tol=1e-6, abs_tol=1e-9):
                _fail(f"{a} vs {b}: diff {got['diff']:.4f} should be {ref['diff']:.4f}, the "
                      "difference of the mean values over seeds")
            se = float(got["se"])
            n = 3
            if math.isclose(se, ref["se"] * math.sqrt(n), rel_tol=1e-3):
                _fail(f"{a} vs {b}: se is sqrt(n) times too large: that is the seeds' standard "
                      "deviation; the standard error of a mean divides the variance by n seeds")
            var_a = values.loc[values.config == a, "value"].var(ddof=0)
            var_b = values.loc[values.config == b, "value"].var(ddof=0)
            if math.isclose(se, math.sqrt(var_a / n + var_b / n), rel_tol=1e-6):
                _fail(f"{a} vs {b}: se uses the population variance (ddof=0); use the sample "
                      "variance, pandas' default .var() (ddof=1)")
            if not math.isclose(se, ref["se"], rel_tol=1e-6):
                _fail(f"{a} vs {b}: se {se:.4f} should be {ref['se']:.4f} = sqrt(var_a / n_a + "
                      "var_b / n_b), the variances over seeds")
            if bool(got["within_noise"]) != ref["within_noise"]:
                _fail(f"{a} vs {b}: |diff| = {abs(ref['diff']):.4f}, se = {ref['se']:.4f}: "
                      f"within_noise should be {ref['within_noise']} (the rule: |diff| < 2 se)")
    _ok("difference, standard error and the 2-standard-error rule agree with "
        "bplf.research.stats.compare")


def check_verdict(fn: Callable) -> None:
    """``fn(values, claimed)`` -> "replicates", "does not replicate" or "inconclusive" by the
    noise rule, lower values being better."""
    from bplf.research.stats import compare, verdict

    with _grading("your verdict"):
        values = seed_results()
        cases = [
            (["claimed", "worse"], "the claimed config beats the only alternative beyond noise"),
            (["claimed", "close"], "the claimed config is lower, but within noise"),
            (["claimed", "worse", "better"], "an alternative beats the claimed config beyond "
                                             "noise"),
            (["claimed", "noisy"], "an alternative has a lower mean, but within noise"),
            (["claimed", "worse", "close"], "the claimed config beats one alternative beyond "
                                            "noise and ties the other"),
        ]
        for configs, story in cases:
            sub = values[values["config"].isin(configs)].reset_index(drop=True)
            ref = verdict([compare(sub, "claimed", o) for o in configs[1:]])
            got = _call(fn, sub.copy(), "claimed")
            if got != ref:
                table = sub.groupby("config")["value"].agg(["mean", "std"]).round(4).to_dict(
                    "index")
                why = {"replicates": "it beats every alternative beyond noise",
                       "does not replicate": "some alternative beats it beyond noise",
                       "inconclusive": "a difference within 2 standard errors is noise, "
                                       "whichever mean is lower"}[ref]
                _fail(f"configs {table}: {story}, so the verdict is {ref!r} ({why}); you "
                      f"returned {got!r}")
    _ok(f"{len(cases)} verdicts agree with the rule of bplf.research.stats.verdict")


#: Every exercise check, by name (for the tests and the guide).
CHECKS: dict[str, Callable] = {
    "check_label_reader": check_label_reader,
    "check_subject_split": check_subject_split,
    "check_logdet": check_logdet,
    "check_flow_log_prob": check_flow_log_prob,
    "check_lu_logdet": check_lu_logdet,
    "check_invertible_module": check_invertible_module,
    "check_bpd": check_bpd,
    "check_train_step": check_train_step,
    "check_interpolation": check_interpolation,
    "check_prior_edit": check_prior_edit,
    "check_compare": check_compare,
    "check_verdict": check_verdict,
}

__all__ = ["CHECKS", "ExerciseError", *CHECKS]
