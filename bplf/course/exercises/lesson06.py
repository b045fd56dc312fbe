"""The checks of notebook 06's exercises: the noise rule (compare) and a verdict."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from bplf.course.exercises.checking import _call, _fail, _grading, _ok
from bplf.research.stats import compare, verdict


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
