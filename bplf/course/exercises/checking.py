"""How a check talks to the student: :class:`ExerciseError` (the message and the student's own
cells, never the checker's source), the stub's "not written yet", the student's crashes, and the
diagnoses of a per-sample value (shape, sign, a constant or a factor off) the lessons share."""

from __future__ import annotations

import contextlib
import linecache
import math
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, NoReturn

import numpy as np
import torch
from IPython import get_ipython
from torch import Tensor


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
