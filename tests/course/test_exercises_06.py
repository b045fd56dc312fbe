"""bplf.course.exercises.lesson06, notebook 06's checks: the noise rule (compare) and a verdict: a
right answer passes, each recognised mistake gets its own message."""

from __future__ import annotations

import math

import pytest

from bplf.course.exercises.checking import ExerciseError
from bplf.course.exercises.lesson06 import check_compare, check_verdict
from bplf.research.stats import compare, verdict


def my_compare(values, a, b, ddof=1, sd=False, k=2.0):
    va = values.loc[values["config"] == a, "value"]
    vb = values.loc[values["config"] == b, "value"]
    diff = va.mean() - vb.mean()
    n = 1 if sd else len(va)
    se = math.sqrt(va.var(ddof=ddof) / n + vb.var(ddof=ddof) / n)
    return {"diff": diff, "se": se, "within_noise": abs(diff) < k * se}


def test_check_compare():
    check_compare(my_compare)
    with pytest.raises(ExerciseError, match="wrong sign"):
        check_compare(lambda v, a, b: my_compare(v, b, a))
    with pytest.raises(ExerciseError, match="seeds' standard deviation"):
        check_compare(lambda v, a, b: my_compare(v, a, b, sd=True))
    with pytest.raises(ExerciseError, match="population variance"):
        check_compare(lambda v, a, b: my_compare(v, a, b, ddof=0))
    with pytest.raises(ExerciseError, match="\\|diff\\| < 2 se"):
        check_compare(lambda v, a, b: my_compare(v, a, b, k=0.5))


def test_check_verdict():
    def right(values, claimed):
        return verdict([compare(values, claimed, o) for o in values["config"].unique()
                        if o != claimed])

    def means_only(values, claimed):
        m = values.groupby("config")["value"].mean()
        return "replicates" if m.idxmin() == claimed else "does not replicate"

    check_verdict(right)
    with pytest.raises(ExerciseError, match="within 2 standard errors is noise"):
        check_verdict(means_only)
