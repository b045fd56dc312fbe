"""The statistics behind every verdict of the ablations (notebook 06): the difference between
two configs over seeds, its standard error, the noise rule and the verdict on a claim.

**One sign convention.** ``diff`` is always config ``a``'s seed mean minus config ``b``'s.
What "better" means is said once per comparison: a loss (bpd, steps to a target) is better
lower; a rate (a share of ``n`` samples or edits: accuracy, hit-rate) is better higher and is
compared with ``rate=True``, which also floors each mean's standard error at the binomial error
of all the samples behind it. ``verdict`` reads both kinds the same way.

**The noise rule.** A difference smaller than ``NOISE_SES`` (2) standard errors is within noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: a difference is beyond noise from this many standard errors on
NOISE_SES = 2.0

REPLICATES, FAILS, INCONCLUSIVE = "replicates", "does not replicate", "inconclusive"


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` independent trials."""
    return float(np.sqrt(p * (1 - p) / n))


def within_noise(diff: float, se: float) -> bool:
    """The noise rule: |diff| < ``NOISE_SES`` standard errors."""
    return bool(abs(diff) < NOISE_SES * se)


def rate_estimate(values: pd.DataFrame) -> tuple[float, float, int]:
    """The seed mean of a rate (column ``value``, a share of ``n`` trials per seed), its standard
    error and the number of seeds. The error is the seed spread's or the binomial error of all
    the trials behind the mean, whichever is larger: two seeds can agree by luck, but no mean of
    a few thousand samples is known better than the binomial error."""
    p, seeds = float(values["value"].mean()), len(values)
    binomial = binomial_se(p, values["n"].sum())
    spread = float(values["value"].std() / np.sqrt(seeds)) if seeds > 1 else 0.0
    return p, max(spread, binomial), seeds


def compare(values: pd.DataFrame, a: str, b: str, rate: bool = False) -> dict:
    """Config ``a`` against config ``b`` over seeds. ``values``: columns config, seed, value
    (and n, the trials per seed, with ``rate``).

    ``diff``: a's mean minus b's; ``se``: its standard error (from the seed spreads; with
    ``rate``, each mean's error is ``rate_estimate``'s); ``ratio``: a's mean over b's (NaN where
    b's is 0);
    ``higher_is_better``: ``rate`` (else lower is better); ``within_noise``: the noise rule, None
    when a config has fewer than 2 seeds (no spread to estimate)."""
    va, vb = values[values["config"] == a], values[values["config"] == b]
    if va.empty or vb.empty:
        raise ValueError(f"no results for {a if va.empty else b!r}")
    ma, mb = float(va["value"].mean()), float(vb["value"].mean())
    enough = len(va) > 1 and len(vb) > 1
    if rate:
        se = float(np.hypot(rate_estimate(va)[1], rate_estimate(vb)[1]))
    elif enough:
        se = float(np.sqrt(va["value"].var() / len(va) + vb["value"].var() / len(vb)))
    else:
        se = float("nan")
    return {"a": a, "b": b, "diff": ma - mb, "se": se, "ratio": ma / mb if mb else float("nan"),
            "seeds": (len(va), len(vb)), "higher_is_better": rate,
            "within_noise": within_noise(ma - mb, se) if enough else None}


def _a_ahead(comparison: dict) -> bool:
    """Whether ``a``'s mean is on the better side of ``b``'s (the comparison's direction)."""
    diff = comparison["diff"]
    return diff > 0 if comparison.get("higher_is_better", False) else diff < 0


def verdict(comparisons: list[dict]) -> str:
    """"replicates" when ``a`` beats every ``b`` beyond noise, "does not replicate" when some
    ``b`` beats ``a`` beyond noise, else "inconclusive" (each comparison in its own direction,
    ``compare``)."""
    beyond = [c for c in comparisons  # (a NaN or zero difference decides nothing)
              if c["within_noise"] is False and (c["diff"] > 0 or c["diff"] < 0)]
    if any(not _a_ahead(c) for c in beyond):
        return FAILS
    if comparisons and len(beyond) == len(comparisons):
        return REPLICATES
    return INCONCLUSIVE


def claim(values: pd.DataFrame, claimed: str, rate: bool = False) -> tuple[str, pd.DataFrame]:
    """Is config ``claimed`` the best of ``values`` (columns config, seed, value; lowest, or
    highest with ``rate``)? The verdict, and its ``compare`` with every other config."""
    if claimed not in set(values["config"]):
        return f"undecided ({claimed} not run yet)", pd.DataFrame()
    rows = [compare(values, claimed, other, rate) for other in values["config"].unique()
            if other != claimed]
    return verdict(rows), pd.DataFrame(rows)
