"""The statistics module: one sign convention for losses and rates, the binomial floor of a
rate's standard error, the noise rule, verdicts and claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bplf.research.stats import (
    NOISE_SES,
    binomial_se,
    claim,
    compare,
    rate_estimate,
    verdict,
    within_noise,
)


def table(values: dict[str, list[float]], n: int | None = None) -> pd.DataFrame:
    """Columns config, seed, value (and n trials per seed)."""
    rows = [{"config": c, "seed": s, "value": v} for c, vs in values.items()
            for s, v in enumerate(vs)]
    frame = pd.DataFrame(rows)
    return frame.assign(n=n) if n else frame


LOSSES = table({"a": [5.0, 5.1, 4.9], "b": [6.0, 6.1, 5.9], "c": [5.05, 4.85, 5.1], "d": [4.0]})


def test_compare_is_a_minus_b_with_the_seed_spread_error():
    ab, ac = compare(LOSSES, "a", "b"), compare(LOSSES, "a", "c")
    assert ab["diff"] == pytest.approx(-1.0) and ab["within_noise"] is False
    assert ab["se"] == pytest.approx(np.sqrt(0.01 / 3 + 0.01 / 3))
    assert ab["ratio"] == pytest.approx(5 / 6) and ab["seeds"] == (3, 3)
    assert ab["higher_is_better"] is False and ac["within_noise"] is True
    assert compare(LOSSES, "b", "a")["diff"] == pytest.approx(1.0)  # antisymmetric
    assert compare(LOSSES, "a", "d")["within_noise"] is None  # one seed: no error estimate
    with pytest.raises(ValueError, match="no results for 'e'"):
        compare(LOSSES, "a", "e")


def test_a_loss_verdict_replicates_fails_or_is_inconclusive():
    ab, ac = compare(LOSSES, "a", "b"), compare(LOSSES, "a", "c")
    assert verdict([ab]) == "replicates"
    assert verdict([ab, ac]) == "inconclusive"
    assert verdict([compare(LOSSES, "b", "a")]) == "does not replicate"
    assert verdict([compare(LOSSES, "a", "d")]) == "inconclusive"  # no error, no decision
    assert verdict([]) == "inconclusive"


def test_a_rate_keeps_the_sign_and_is_better_higher():
    """The same difference reads the other way for a rate: a higher accuracy beyond noise is
    better, so the verdict flips while ``diff`` keeps its sign (a minus b)."""
    rates = table({"high": [0.30, 0.31], "low": [0.17, 0.18]}, n=2100)
    up, down = compare(rates, "high", "low", rate=True), compare(rates, "low", "high", rate=True)
    assert up["diff"] == pytest.approx(0.13) and down["diff"] == pytest.approx(-0.13)
    assert up["higher_is_better"] and up["within_noise"] is False
    assert verdict([up]) == "replicates" and verdict([down]) == "does not replicate"
    assert claim(rates, "high", rate=True)[0] == "replicates"
    assert claim(rates, "high")[0] == "does not replicate"  # read as a loss: higher is worse


def test_a_rate_error_has_the_binomial_floor():
    """Two seeds that agree exactly still carry the binomial error of all their trials."""
    p, se, seeds = rate_estimate(table({"x": [0.2, 0.2]}, n=1000))
    assert (p, seeds) == (pytest.approx(0.2), 2)
    assert se == pytest.approx(binomial_se(0.2, 2000)) == pytest.approx(np.sqrt(0.16 / 2000))
    spread = table({"x": [0.1, 0.3]}, n=100000)  # seeds far apart: the spread wins
    assert rate_estimate(spread)[1] == pytest.approx(np.std([0.1, 0.3], ddof=1) / np.sqrt(2))
    close = table({"top": [0.175, 0.175], "close": [0.19, 0.19]}, n=2100)
    c = compare(close, "close", "top", rate=True)
    assert c["se"] == pytest.approx(np.hypot(binomial_se(0.19, 4200), binomial_se(0.175, 4200)))
    assert c["within_noise"] is True and verdict([c]) == "inconclusive"


def test_the_noise_rule_is_two_standard_errors():
    assert NOISE_SES == 2
    assert within_noise(0.19, 0.1) and within_noise(-0.19, 0.1)
    assert not within_noise(0.21, 0.1) and not within_noise(-0.21, 0.1)


def test_claim_compares_the_claimed_config_with_every_other():
    values = table({"fast": [5.5, 5.51], "slow": [5.9, 5.91], "never": [6.2, 6.21]})
    result, comparisons = claim(values, "fast")
    assert result == "replicates" and set(comparisons["b"]) == {"slow", "never"}
    assert (comparisons["a"] == "fast").all() and (comparisons["diff"] < 0).all()
    assert claim(values, "slow")[0] == "does not replicate"
    assert claim(values, "depth9")[0].startswith("undecided")
