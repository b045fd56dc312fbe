"""bplf.course.exercises.lesson05, notebook 05's checks: interpolation, the edit that re-expresses
the top prior: a right answer passes, each recognised mistake gets its own message."""

from __future__ import annotations

import pytest
import torch

from bplf.course.exercises.checking import ExerciseError
from bplf.course.exercises.lesson05 import check_interpolation, check_prior_edit


def lerp(model, xa, xb, steps, top_only=False, pixels=False):
    t = torch.linspace(0, 1, steps).view(-1, 1, 1, 1)
    if pixels:
        return xa + t * (xb - xa)
    with torch.no_grad():
        za, zb = model.encode(xa), model.encode(xb)
        zs = [a + t * (b - a) for a, b in zip(za, zb, strict=True)]
        if top_only:
            zs = [a.expand_as(z) for a, z in zip(za[:-1], zs[:-1], strict=True)] + zs[-1:]
        return model.decode(zs)


def test_check_interpolation():
    check_interpolation(lerp)
    with pytest.raises(ExerciseError, match="cross-fade in pixel space"):
        check_interpolation(lambda m, a, b, s: lerp(m, a, b, s, pixels=True))
    with pytest.raises(ExerciseError, match="top latent only"):
        check_interpolation(lambda m, a, b, s: lerp(m, a, b, s, top_only=True))
    with pytest.raises(ExerciseError, match="endpoints included"):
        check_interpolation(lambda m, a, b, s: lerp(m, a, b, s - 1))


def swap(model, x, source, target, scale=True):
    with torch.no_grad():
        zs = model.encode(x)
        mu_s, log_s = model.top_prior.params(source)
        mu_t, log_t = model.top_prior.params(target)
        factor = torch.exp(log_t - log_s) if scale else 1.0
        return model.decode([*zs[:-1], mu_t + factor * (zs[-1] - mu_s)])


def test_check_prior_edit():
    check_prior_edit(swap)
    with pytest.raises(ExerciseError, match="from the target to the source"):
        check_prior_edit(lambda m, x, s, t: swap(m, x, t, s))
    with pytest.raises(ExerciseError, match="shifted the mean only"):
        check_prior_edit(lambda m, x, s, t: swap(m, x, s, t, scale=False))
    with pytest.raises(ExerciseError, match="returns the input faces"):
        check_prior_edit(lambda m, x, s, t: x)
