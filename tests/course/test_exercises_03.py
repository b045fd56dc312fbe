"""bplf.course.exercises.lesson03, notebook 03's checks: the LU log-det, any module against the flow
convention: a right answer passes, each recognised mistake gets its own message."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bplf.course.exercises.checking import ExerciseError
from bplf.course.exercises.lesson03 import check_invertible_module, check_lu_logdet


def test_check_lu_logdet():
    check_lu_logdet(lambda conv, h, w: h * w * conv.log_s.sum())
    with pytest.raises(ExerciseError, match="multiply by H \\* W"):
        check_lu_logdet(lambda conv, h, w: conv.log_s.sum())
    with pytest.raises(ExerciseError, match="not a dense determinant"):
        check_lu_logdet(lambda conv, h, w: h * w * torch.linalg.slogdet(conv.weight())[1])
    with pytest.raises(ExerciseError, match="log\\|s\\|"):
        check_lu_logdet(lambda conv, h, w: h * w * conv.log_s.exp().sum())


class Additive(nn.Module):
    def __init__(self, mistake: str = ""):
        super().__init__()
        self.t = nn.Conv2d(2, 2, 3, padding=1)
        self.mistake = mistake

    def forward(self, x, cond=None):
        a, b = x[:, :2], x[:, 2:]
        y = torch.cat([a + self.t(b), b], 1)
        if self.mistake == "identity":
            y = x
        if self.mistake == "drop":
            y = y[:, :2]
        logdet = x.new_zeros(len(x))
        if self.mistake == "logdet":
            logdet = logdet + 1.0
        if self.mistake == "scalar":
            logdet = logdet.sum()
        return y, logdet

    def inverse(self, y, cond=None):
        a, b = y[:, :2], y[:, 2:]
        sign = 1 if self.mistake == "inverse" else -1
        return torch.cat([a + sign * self.t(b), b], 1)


def test_check_invertible_module():
    x = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    check_invertible_module(Additive(), x)
    for mistake, message in (("inverse", "inverse\\(forward\\(x\\)\\) differs"),
                             ("identity", "unchanged"), ("drop", "x's shape"),
                             ("logdet", "same constant"), ("scalar", "over the batch")):
        with pytest.raises(ExerciseError, match=message):
            check_invertible_module(Additive(mistake), x)
