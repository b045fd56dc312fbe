"""bplf.course.exercises.lesson04, notebook 04's checks: bits per dimension, a training step: a
right answer passes, each recognised mistake gets its own message."""

from __future__ import annotations

import math

import pytest
import torch

from bplf.course.exercises.checking import ExerciseError
from bplf.course.exercises.lesson04 import check_bpd, check_train_step, tiny_images, tiny_model
from bplf.likelihood import bpd_from_log_prob


@pytest.fixture(scope="module")
def small():
    return tiny_model(), tiny_images(8, seed=1), torch.arange(8) % 7


def bpd_variants(model, x, y, variant=""):
    with torch.no_grad():
        lp = model.log_prob(x, y).double()
    d = x[0].numel()
    num = -lp + (0 if "nodeq" in variant else d * math.log(256))
    den = (1 if "image" in variant else d) * (1 if "nats" in variant else math.log(2))
    return float((num / den).mean())


def test_check_bpd(small):
    model, x, y = small
    check_bpd(bpd_variants, model, x, y)
    for variant, message in (("nodeq", "did you forget the dequantisation term"),
                             ("nats", "ln 2 times"), ("image", "D = 64 times too large"),
                             ("nodeq nats", "nats and the D log 256 term is missing")):
        with pytest.raises(ExerciseError, match=message):
            check_bpd(lambda m, xx, yy, v=variant: bpd_variants(m, xx, yy, v), model, x, y)
    with pytest.raises(ExerciseError, match="one number, the mean"):
        check_bpd(lambda m, xx, yy: bpd_from_log_prob(m.log_prob(xx, yy), 64).detach(),
                     model, x, y)


def step(model, opt, x, y, zero=True, sign=1.0):
    if zero:
        opt.zero_grad()
    loss = bpd_from_log_prob(model.log_prob(x, y), x[0].numel()).mean()
    (sign * loss).backward()
    opt.step()
    return loss.item()


def test_check_train_step():
    check_train_step(step)
    with pytest.raises(ExerciseError, match="zero_grad"):
        check_train_step(lambda m, o, x, y: step(m, o, x, y, zero=False))
    with pytest.raises(ExerciseError, match="minimise -log p"):
        check_train_step(lambda m, o, x, y: step(m, o, x, y, sign=-1.0))
    with pytest.raises(ExerciseError, match="parameters did not change"):
        check_train_step(lambda m, o, x, y: bpd_from_log_prob(m.log_prob(x, y),
                                                                 64).mean().item())
    with pytest.raises(ExerciseError, match="that is nats"):
        check_train_step(lambda m, o, x, y: step(m, o, x, y) * math.log(2))
