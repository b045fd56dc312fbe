"""bplf.course.exercises: every check of the registry is an assertion and says "not written yet"
for an unsolved stub (each lesson's own checks: test_exercises_01.py ... test_exercises_06.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bplf.course.exercises import CHECKS
from bplf.course.exercises.checking import ExerciseError


def stub(*_, **__):
    raise NotImplementedError()


def test_every_check_is_an_assertion_and_reports_a_stub():
    assert issubclass(ExerciseError, AssertionError)
    for name, check in CHECKS.items():
        args = {"check_logdet": (torch.sinh, stub, torch.randn(2, 3)),
                "check_invertible_module": (Stub(), torch.randn(2, 2, 2, 2))}.get(name, (stub,))
        with pytest.raises(ExerciseError, match="not written yet"):
            check(*args)


class Stub(nn.Module):
    def forward(self, x, cond=None):
        raise NotImplementedError()
