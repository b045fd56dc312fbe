"""The noise experiment (issue "Faces a person accepts, part 2"; notebook 06): do faces with
Gaussian noise in training (``TrainConfig.noise_std``) and one Tweedie denoising step after
sampling (``BPLF.denoise``), averaged weights (``TrainConfig.ema_decay``), or both give samples
and edits a person accepts, and at what cost in clean-face bpd?

Every run of the ``noise`` grid is scored (``bplf.research.scoring``) at part 1's recommended
settings (``RECOMMENDED_SAMPLES``, ``RECOMMENDED_EDIT``) and unguided at T 0.7 (the setting of
the issue's Fréchet-distance target), each as drawn and, for runs trained on noisy faces, after
one denoising step. A run's ``test_bpd`` is of clean test faces under its density (for a
noise-trained run, the density of noisy faces, evaluated at clean ones). ``summary`` and
``verdicts`` compare every config, raw and denoised ("+ denoise"), with today's recipe as drawn,
by the noise rule (``bplf.research.stats``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bplf.guidance import Guidance
from bplf.research.evaluate import Sweep
from bplf.research.scoring import GridScoring, per_seed
from bplf.research.stats import compare, verdict

#: today's recipe: the shipped model's configuration
BASELINE = "today"
#: part 1's recommended sample setting and edit (``recommended`` in
#: ``checkpoints/bplf-emotion48/evaluation.json``: temperature and guidance; method, guidance
#: and intensity)
RECOMMENDED_SAMPLES = (0.85, Guidance(prior=3, coupling=2))
RECOMMENDED_EDIT = ("reexpress", Guidance(prior=3, coupling=2), 1.5)
#: the unguided setting whose Fréchet distance the issue halves
UNGUIDED = (0.7, Guidance())
DENOISED = " + denoise"


@dataclass
class NoiseScoring(GridScoring):
    """The noise grid's scoring: the recommended samples and edit and unguided samples, each as
    drawn and denoised (``evaluate_checkpoint`` denoises only runs trained on noisy faces)."""

    def sweep(self) -> Sweep:
        method, guidance, intensity = RECOMMENDED_EDIT
        return Sweep([UNGUIDED, RECOMMENDED_SAMPLES], [(method, guidance, (intensity,))],
                     denoise=(False, True))


def variants(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with config renamed "<config> + denoise" where denoised; a run's clean bpd and
    references (measured once) copied to its denoised variant."""
    rows = rows.copy()
    noisy = set(rows.loc[rows["denoised"], "config"])
    shared = rows[~rows["metric"].str.startswith(("sample_", "edit_"))
                  & rows["config"].isin(noisy)]
    rows.loc[rows["denoised"], "config"] += DENOISED
    return pd.concat([rows, shared.assign(config=shared["config"] + DENOISED)],
                     ignore_index=True)


def _setting(rows: pd.DataFrame, metric: str, setting: tuple[float, Guidance]) -> pd.DataFrame:
    t, g = setting
    return per_seed(rows, metric, temperature=t, guidance=g.label())


def _edit(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    method, g, _ = RECOMMENDED_EDIT  # one intensity: the file has no intensity column
    return per_seed(rows, metric, method=method, guidance=g.label())


def per_seed_figures(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The per-seed rows (config, seed, value, n) of each figure of the summary."""
    rows = variants(rows)
    out = {"clean test bpd": per_seed(rows, "test_bpd", source="all"),
           "unguided FD": _setting(rows, "sample_fd", UNGUIDED),
           "unguided joint": _setting(rows, "sample_joint_rate", UNGUIDED)}
    for name, metric in (("face rate", "face_rate"), ("joint rate", "joint_rate"),
                         ("accuracy", "accuracy"), ("FD", "fd"), ("pair SSIM", "pair_ssim"),
                         ("precision", "precision"), ("recall", "recall")):
        out[name] = _setting(rows, f"sample_{metric}", RECOMMENDED_SAMPLES)
    out["edit joint"] = _edit(rows, "edit_joint_rate")
    out["edit SSIM"] = _edit(rows, "edit_ssim")
    return out


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per config, raw and denoised: seed means of clean test bpd, the unguided samples' FD and
    joint rate, the recommended setting's face rate, joint rate, classifier accuracy, FD, pair
    SSIM, precision and recall, and the recommended edit's joint hit-rate and SSIM to its input;
    ``seeds``."""
    figures = per_seed_figures(rows)
    table = pd.DataFrame({name: v.groupby("config")["value"].mean()
                          for name, v in figures.items()})
    table["joint sd"] = figures["joint rate"].groupby("config")["value"].std()
    table["seeds"] = figures["clean test bpd"].groupby("config")["seed"].nunique()
    order = [c for c in dict.fromkeys(variants(rows)["config"]) if c in table.index]
    return table.loc[order]


def verdicts(rows: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Every config, raw and denoised, against ``baseline`` as drawn by the noise rule
    (differences: the config's mean minus the baseline's): the recommended setting's joint rate
    and the recommended edit's joint hit-rate (rates, higher is better), the unguided samples'
    Fréchet distance and the clean test bpd (lower is better; bpd at most 0.05 above)."""
    figures = per_seed_figures(rows)
    out = []
    for config in figures["clean test bpd"]["config"].unique():
        if config == baseline:
            continue
        j = compare(figures["joint rate"], config, baseline, rate=True)
        e = compare(figures["edit joint"], config, baseline, rate=True)
        f = compare(figures["unguided FD"], config, baseline)
        b = compare(figures["clean test bpd"], config, baseline)
        out.append({"config": config, "joint diff": j["diff"], "joint se": j["se"],
                    "better joint?": verdict([j]), "edit diff": e["diff"], "edit se": e["se"],
                    "better edits?": verdict([e]), "FD diff": f["diff"], "FD se": f["se"],
                    "lower FD?": verdict([f]), "bpd diff": b["diff"], "bpd se": b["se"],
                    "bpd within 0.05?": bool(b["diff"] <= 0.05)})
    return pd.DataFrame(out).set_index("config") if out else pd.DataFrame()


def chosen(rows: pd.DataFrame, baseline: str = BASELINE) -> str:
    """The winning recipe: the config (raw or denoised) with the highest seed-mean joint rate at
    the recommended setting among the baseline and those whose edits and unguided samples are
    not worse than the baseline's beyond noise (clean bpd is reported, not a condition: a
    noise-trained sampler can ship beside a likelihood model)."""
    v = verdicts(rows, baseline)
    ok = [c for c in v.index if v.loc[c, "better edits?"] != "does not replicate"
          and v.loc[c, "lower FD?"] != "does not replicate"]
    return str(summary(rows).loc[[baseline, *ok], "joint rate"].idxmax())
