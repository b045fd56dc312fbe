"""The conditioning experiment (issue "expressions that read"; notebook 06): for every run of an
ablation grid, how well its samples and edits show the emotion, beside its test bpd.

Each run (its ``best.pt``) is measured on the test split by the one evaluator,
``bplf.research.evaluate.evaluate_checkpoint``, at this experiment's settings
(``FidelityConfig``; ``bplf.research.scoring`` runs it over the grid):

* ``test_bpd`` per source, emotion summed out (``source="all"``: weighted by faces), and
  ``generative_accuracy``: the flow's own classifier argmax_y log p(x|y), balanced, per source;
* ``sample_accuracy`` and ``sample_fd``: the repo classifier's balanced accuracy on samples
  drawn for each emotion (chance 1/7) and their Fréchet distance to the real test faces, per
  temperature, and per scale of the coupling rule for runs trained with label dropout (a guided
  sample is not a draw from the model's density), beside what a person sees;
* ``edit_hit_rate`` at intensity 1 and the identity kept, ``edit_ssim`` and ``edit_rmse`` to the
  input, per editing method (and guidance for ``swap``); ``same_person_ssim``/``_rmse``: two
  real photos of one person, the reference of the one keeps-the-person rule
  (``bplf.research.metrics.faces.keeps_person``).

The committed ``cpu-long`` rows were measured before the one evaluator: their edits went toward
all 7 emotions (the face's own included) and their SSIM and RMSE toward one other emotion per
face, and they carry ``different_person_ssim``/``_rmse`` (two real faces of one emotion); their
same-person reference rows were added later (``scoring.with_reference``). ``summary`` and
``verdicts`` turn them into the table and the decisions of notebook 06, by the ablations' noise
rule (``bplf.research.stats``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bplf.data import EMOTIONS
from bplf.guidance import Guidance
from bplf.research.evaluate import Sweep
from bplf.research.metrics.faces import keeps_person
from bplf.research.scoring import GridScoring, per_seed
from bplf.research.stats import NOISE_SES, compare, rate_estimate, verdict

TEMPERATURES = (0.5, 0.7, 1.0)
GUIDANCE = (1.0, 2.0, 3.0, 5.0, 8.0)
#: the editing methods the committed grid measured
METHODS = ("mean", "prior", "swap")
CHANCE = 1 / len(EMOTIONS)
#: the config every other is compared with
BASELINE = "top-prior"


@dataclasses.dataclass
class FidelityConfig(GridScoring):
    """The conditioning grid's scoring (``bplf.research.scoring``): the temperatures, the scales
    of the coupling rule and the editing methods; the guidance written as the coupling rule's
    scale."""

    temperatures: tuple[float, ...] = TEMPERATURES
    guidance: tuple[float, ...] = GUIDANCE
    methods: tuple[str, ...] = METHODS

    def sweep(self) -> Sweep:
        """The settings measured: every temperature at every scale of the coupling rule; each
        method at intensity 1, ``swap`` at every scale (``evaluate_checkpoint`` drops what a
        run cannot do: guidance without a trained null label, ``swap`` without
        label-conditioned couplings)."""
        scales = [Guidance(coupling=g) for g in self.guidance]
        return Sweep([(t, g) for g in scales for t in self.temperatures],
                     [(m, g, (1.0,)) for m in self.methods
                      for g in (scales if m == "swap" else [Guidance()])])

    def guidance_column(self, label: str) -> float:
        return {Guidance(coupling=g).label(): g for g in self.guidance}.get(label, np.nan)


def best_setting(rows: pd.DataFrame, metric: str, by: list[str], **where) -> pd.DataFrame:
    """Per config: the setting (the columns ``by``, e.g. temperature and guidance) with the
    highest seed-mean ``metric``, and that setting's per-seed rows (columns config, seed,
    value, n and ``by``)."""
    chosen = per_seed(rows, metric, **where)
    columns = ["config", "seed", "value", "n", *by]
    if chosen.empty:
        return chosen[columns]
    means = chosen.groupby(["config", *by], dropna=False)["value"].mean().reset_index()
    best = means.loc[means.groupby("config")["value"].idxmax(), ["config", *by]]
    return chosen.merge(best, on=["config", *by])[columns]


def kept_edits(rows: pd.DataFrame) -> pd.DataFrame:
    """The edit hit-rate rows of the settings (config, method, guidance) that keep the person
    by the one rule, ``bplf.research.metrics.faces.keeps_person``: seed-mean SSIM to the input at
    least the same-person reference (the ``same_person_ssim`` rows, two real photos of one person).
    A hit-rate bought by replacing the face does not count."""
    key = ["config", "method", "guidance"]
    reference = per_seed(rows, "same_person_ssim").groupby("config")["value"].mean()
    if reference.empty:
        raise ValueError("the rows have no same_person_ssim reference: evaluate_grid adds it")
    ssim = per_seed(rows, "edit_ssim").groupby(key)["value"].mean()
    kept = [keeps_person(value, {"ssim": reference.get(setting[0], np.nan)})
            for setting, value in ssim.items()]
    return per_seed(rows, "edit_hit_rate").merge(ssim.index[kept].to_frame(index=False),
                                                  on=key)


def _spread(values: pd.DataFrame) -> pd.DataFrame:
    return values.groupby("config")["value"].agg(["mean", "std"])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per config (seed means, with their standard deviation): test bpd, generative accuracy on
    FER-2013, sample fidelity at its best temperature without guidance and at its best
    (temperature, guidance) with that setting's Fréchet distance, and the edit hit-rate at
    intensity 1 of its best setting that keeps the person (``kept_edits``), with that edit's
    SSIM and RMSE to the input."""
    setting = ["config", "seed", "method", "guidance"]
    bpd = _spread(per_seed(rows, "test_bpd", source="all"))
    gen = _spread(per_seed(rows, "generative_accuracy", source="fer2013"))
    plain = best_setting(rows[rows["guidance"] == 1.0], "sample_accuracy", ["temperature"])
    guided = best_setting(rows, "sample_accuracy", ["temperature", "guidance"])
    fd = per_seed(rows, "sample_fd").merge(guided[["config", "seed", "temperature", "guidance"]],
                                            on=["config", "seed", "temperature", "guidance"])
    edits = best_setting(kept_edits(rows), "edit_hit_rate", ["method", "guidance"])
    ssim = per_seed(rows, "edit_ssim").merge(edits[setting], on=setting)
    rmse = per_seed(rows, "edit_rmse").merge(edits[setting], on=setting)
    first = lambda frame, col: frame.groupby("config")[col].first()  # noqa: E731
    table = pd.DataFrame({
        "test bpd": bpd["mean"], "bpd sd": bpd["std"],
        "generative acc (FER)": gen["mean"],
        "fidelity, guidance 1": _spread(plain)["mean"], "at T": first(plain, "temperature"),
        "best fidelity": _spread(guided)["mean"], "fidelity sd": _spread(guided)["std"],
        "best T": first(guided, "temperature"), "best guidance": first(guided, "guidance"),
        "FD there": _spread(fd)["mean"],
        "edit hit-rate": _spread(edits)["mean"], "edit sd": _spread(edits)["std"],
        "edit method": first(edits, "method"), "edit guidance": first(edits, "guidance"),
        "edit SSIM": _spread(ssim)["mean"], "edit RMSE": _spread(rmse)["mean"],
        "seeds": rows[rows["metric"] == "test_bpd"].groupby("config")["seed"].nunique(),
    })
    order = list(dict.fromkeys(rows["config"]))
    return table.loc[[c for c in order if c in table.index]]


VERDICT_COLUMNS = ["config", "fidelity diff", "fidelity se", "better fidelity?", "edit diff",
                   "edit se", "better edits?", "bpd diff", "bpd se", "bpd within 0.05?",
                   "goal met?"]


def verdicts(rows: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Every config against ``baseline`` by the noise rule (``bplf.research.stats``; differences
    are the config's mean minus the baseline's): better sample fidelity (each at its best setting)
    and better edit hit-rate (its best setting that keeps the person, ``kept_edits``), rates higher
    is better; a test bpd no worse than 0.05 above the baseline's; and the issue's goal: fidelity
    and hit-rate margins over chance at least twice the baseline's, both better beyond noise, bpd
    within 0.05. A config none of whose edits keeps the person has no edit verdict ("inconclusive")
    and does not meet the goal."""
    fid = best_setting(rows, "sample_accuracy", ["temperature", "guidance"])
    edits = best_setting(kept_edits(rows), "edit_hit_rate", ["method", "guidance"])
    bpd = per_seed(rows, "test_bpd", source="all")[["config", "seed", "value"]]
    mean = lambda v, c: v.loc[v["config"] == c, "value"].mean()  # noqa: E731
    out = []
    for config in dict.fromkeys(rows["config"]):
        if config == baseline:
            continue
        f, b = compare(fid, config, baseline, rate=True), compare(bpd, config, baseline)
        e = (compare(edits, config, baseline, rate=True) if config in set(edits["config"])
             else {"diff": np.nan, "se": np.nan, "within_noise": None})
        goal = (mean(fid, config) - CHANCE >= 2 * (mean(fid, baseline) - CHANCE)
                and mean(edits, config) - CHANCE >= 2 * (mean(edits, baseline) - CHANCE)
                and b["diff"] <= 0.05 and verdict([f]) == verdict([e]) == "replicates")
        out.append({"config": config, "fidelity diff": f["diff"], "fidelity se": f["se"],
                    "better fidelity?": verdict([f]), "edit diff": e["diff"],
                    "edit se": e["se"], "better edits?": verdict([e]),
                    "bpd diff": b["diff"], "bpd se": b["se"],
                    "bpd within 0.05?": bool(b["diff"] <= 0.05), "goal met?": bool(goal)})
    return pd.DataFrame(out, columns=VERDICT_COLUMNS).set_index("config")


def above_chance(rows: pd.DataFrame, config: str = BASELINE) -> pd.DataFrame:
    """Do ``config``'s unguided samples read as their emotion above chance? Per temperature:
    the seed-mean balanced accuracy, its margin over 1/7 and the margin's standard error
    (``bplf.research.stats.rate_estimate``); above chance when the margin is positive and beyond
    noise (``NOISE_SES`` standard errors)."""
    fid = per_seed(rows, "sample_accuracy", config=config, guidance=1.0)
    out = []
    for t, v in fid.groupby("temperature"):
        p, se, seeds = rate_estimate(v)
        out.append({"temperature": t, "accuracy": p, "margin": p - CHANCE, "se": se,
                    "seeds": seeds, "above chance?": bool(p - CHANCE > NOISE_SES * se)})
    return pd.DataFrame(out).set_index("temperature")
