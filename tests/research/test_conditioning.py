"""The conditioning experiment's evaluation: tidy per-run figures from the one evaluator,
guidance only where a null label was trained, resumable files, the one keeps-the-person rule,
and the summary, verdicts and chance test built on them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bplf.flows import LabelConfig
from bplf.research.conditioning import (
    CHANCE,
    above_chance,
    kept_edits,
    summary,
    verdicts,
)
from bplf.research.experiments import FIDELITY_COLUMNS, GRIDS
from bplf.runs import load_run_config

COLUMNS = FIDELITY_COLUMNS


def test_each_mechanism_trains_with_its_model_and_train_overrides(conditioning_runs):
    """Every config of the grid records the model flags and the TrainConfig overrides (class
    loss, label dropout) it was given."""
    root, _, _ = conditioning_runs
    runs = [load_run_config(p.parent) for p in (root / "runs").glob("*/seed0/config.json")]
    assert len(runs) == len(GRIDS["conditioning"])  # six distinct runs
    for name, config in GRIDS["conditioning"].items():
        label = config.model.get("label", LabelConfig())
        train = {"class_loss_weight": 0.0, "label_dropout": 0.0, **config.train}
        # the model records whether its run trained the null label
        matches = [1 for m, t in runs
                   if dataclasses.replace(m.label, null_trained=False) == label
                   and m.label.null_trained == (t.label_dropout > 0)
                   and all(getattr(t, k) == v for k, v in train.items())]
        assert len(matches) == 1, name


def test_every_run_gets_every_figure(conditioning_runs, synthetic_es, small_scoring):
    _, _, rows = conditioning_runs
    assert list(rows.columns) == COLUMNS
    assert set(zip(rows["config"], rows["seed"], strict=True)) == {
        (c, s) for c in ("top-prior", "label-dropout") for s in (0, 1)}
    run = rows[(rows["config"] == "top-prior") & (rows["seed"] == 0)]
    sources = set(synthetic_es.select(split="test").source)
    assert set(run.loc[run["metric"] == "test_bpd", "source"]) == sources | {"all"}
    assert run.loc[run["metric"] == "test_bpd", "value"].between(0, 12).all()
    samples = run[run["metric"] == "sample_accuracy"]
    assert sorted(samples["temperature"]) == [0.7, 1.0] and (samples["guidance"] == 1.0).all()
    assert (samples["n"] == 7 * small_scoring.per_emotion).all()
    reference = run["metric"].str.startswith("same_person")
    assert run.loc[~reference, "value"].between(-1e9, 1e9).all()  # finite
    assert run.loc[reference, "value"].isna().all()  # the synthetic faces have no subjects
    # no swap without label-conditioned couplings, and no guidance without a trained null label
    assert set(run.loc[run["metric"] == "edit_hit_rate", "method"]) == {"mean", "prior"}
    edits = run[run["metric"] == "edit_hit_rate"]
    # each face toward the 6 other emotions
    assert (edits["n"] == 6 * small_scoring.edit_faces).all()
    assert set(run["metric"]) >= {"round_trip", "same_person_ssim", "sample_face_rate",
                                  "edit_joint_rate", "generative_accuracy"}
    guided = rows[(rows["config"] == "label-dropout") & (rows["seed"] == 0)]
    assert set(guided.loc[guided["metric"] == "sample_accuracy", "guidance"]) == {1.0, 3.0}
    swaps = guided[(guided["metric"] == "edit_hit_rate") & (guided["method"] == "swap")]
    assert sorted(swaps["guidance"]) == [1.0, 3.0]
    assert rows.loc[rows["metric"] == "edit_hit_rate", "value"].between(0, 1).all()


def fake(values: dict[str, list[float]], bpd: dict[str, list[float]],
         reference: float = 0.45) -> pd.DataFrame:
    """Fidelity rows where sample accuracy and edit hit-rate both take ``values`` (edits of
    SSIM 0.5 to their inputs, against a same-person ``reference``)."""
    rows = []
    for config, accs in values.items():
        for seed, acc in enumerate(accs):
            base = {"grid": "conditioning", "config": config, "seed": seed, "source": "all",
                    "method": "", "temperature": np.nan, "guidance": 1.0, "n": 2100}
            rows += [{**base, "metric": "sample_accuracy", "temperature": 0.7, "value": acc},
                     {**base, "metric": "sample_accuracy", "temperature": 1.0,
                      "value": acc - 0.01},
                     {**base, "metric": "sample_fd", "temperature": 0.7, "value": 3.0},
                     {**base, "metric": "edit_hit_rate", "method": "mean", "value": acc},
                     {**base, "metric": "edit_ssim", "method": "mean", "value": 0.5},
                     {**base, "metric": "edit_rmse", "method": "mean", "value": 20.0},
                     {**base, "metric": "same_person_ssim", "value": reference},
                     {**base, "metric": "same_person_rmse", "value": 37.0},
                     {**base, "metric": "test_bpd", "value": bpd[config][seed]},
                     {**base, "metric": "generative_accuracy", "source": "fer2013",
                      "value": 0.3}]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_summary_and_verdicts_follow_the_noise_rule():
    rows = fake({"top-prior": [0.17, 0.18], "better": [0.25, 0.26], "noisy": [0.10, 0.30],
                 "costly": [0.30, 0.31]},
                {"top-prior": [5.70, 5.71], "better": [5.72, 5.73], "noisy": [5.7, 5.7],
                 "costly": [5.90, 5.91]})
    table = summary(rows)
    assert list(table.index) == ["top-prior", "better", "noisy", "costly"]
    assert table.loc["better", "best fidelity"] == pytest.approx(0.255)
    assert table.loc["better", "best T"] == 0.7 and table.loc["better", "edit method"] == "mean"
    v = verdicts(rows)
    assert v.loc["better", "better fidelity?"] == "replicates"
    assert v.loc["noisy", "better fidelity?"] == "inconclusive"
    # twice the baseline's margin over chance, bpd within 0.05: met; 0.2 bpd worse: not met
    assert v.loc["better", "goal met?"] and not v.loc["costly", "goal met?"]
    assert not v.loc["costly", "bpd within 0.05?"]
    assert v.loc["better", "fidelity diff"] == pytest.approx(0.255 - 0.175)  # config - baseline


def test_the_goal_needs_twice_the_baselines_margin_over_chance():
    """Better beyond noise in both, at equal bpd, is not enough: a margin over chance short of
    twice the baseline's misses the goal."""
    rows = fake({"top-prior": [0.17, 0.18], "short": [0.20, 0.205], "twice": [0.21, 0.215]},
                {c: [5.7, 5.71] for c in ("top-prior", "short", "twice")})
    v = verdicts(rows)
    assert 0.2025 - CHANCE < 2 * (0.175 - CHANCE) <= 0.2125 - CHANCE
    for config in ("short", "twice"):
        assert v.loc[config, "better fidelity?"] == v.loc[config, "better edits?"] == "replicates"
    assert not v.loc["short", "goal met?"] and v.loc["twice", "goal met?"]


def test_above_chance_needs_a_margin_beyond_two_standard_errors():
    rows = fake({"top-prior": [0.17, 0.175], "flat": [0.14, 0.15]},
                {"top-prior": [5.7, 5.7], "flat": [5.7, 5.7]})
    top, flat = above_chance(rows), above_chance(rows, "flat")
    assert top.loc[0.7, "above chance?"] and not flat.loc[0.7, "above chance?"]
    # the binomial error of 4,200 samples bounds the standard error from below
    assert top.loc[0.7, "se"] >= np.sqrt(0.1725 * 0.8275 / 4200) - 1e-12


def test_the_figure_shows_guidance_curves_and_every_config(conditioning_runs):
    from bplf.course.viz import conditioning_figure

    _, _, rows = conditioning_runs
    fig = conditioning_figure(rows)
    labels = {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
    assert {"label-dropout, T=0.7", "label-dropout, T=1.0"} <= labels  # a curve per temperature
    assert any(label.startswith("top-prior (T=") for label in labels)  # a dot at its best T
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["top-prior", "label-dropout"]
    curves = {c.get_label(): list(c.lines[0].get_xdata()) for c in fig.axes[0].containers}
    assert curves["label-dropout, T=0.7"] == [1.0, 3.0]  # against every guidance scale
    assert len(curves) == 3


def test_verdicts_of_the_baseline_alone_are_an_empty_table():
    rows = fake({"top-prior": [0.17, 0.18]}, {"top-prior": [5.7, 5.7]})
    table = verdicts(rows)
    assert table.empty and "goal met?" in table.columns


def test_two_seeds_that_agree_by_luck_still_carry_the_binomial_error():
    """A 1.5-point lead of 2,100 samples per seed is within noise, however close the seeds."""
    rows = fake({"top-prior": [0.175, 0.175], "close": [0.19, 0.19]},
                {"top-prior": [5.7, 5.71], "close": [5.7, 5.71]})
    v = verdicts(rows)
    assert v.loc["close", "fidelity se"] >= np.hypot(*(np.sqrt(p * (1 - p) / 4200)
                                                      for p in (0.175, 0.19))) - 1e-12
    assert v.loc["close", "better fidelity?"] == "inconclusive"


def test_an_edit_that_replaces_the_face_does_not_count():
    """A higher hit-rate whose edited faces are less like their inputs than two photos of one
    person are is left out; the best edit that keeps the person is reported instead."""
    rows = fake({"top-prior": [0.17, 0.18], "swapper": [0.17, 0.18]},
                {"top-prior": [5.7, 5.7], "swapper": [5.7, 5.7]})
    extra = []
    for seed in (0, 1):
        base = {"grid": "conditioning", "config": "swapper", "seed": seed, "source": "all",
                "method": "swap", "temperature": np.nan, "guidance": 8.0, "n": 1400}
        extra += [{**base, "metric": "edit_hit_rate", "value": 0.6},
                  {**base, "metric": "edit_ssim", "value": 0.44},
                  {**base, "metric": "edit_rmse", "value": 140.0}]
    rows = pd.concat([rows, pd.DataFrame(extra, columns=COLUMNS)], ignore_index=True)
    table = summary(rows)
    assert table.loc["swapper", "edit method"] == "mean"
    assert table.loc["swapper", "edit hit-rate"] == pytest.approx(0.175)
    assert verdicts(rows).loc["swapper", "better edits?"] == "inconclusive"


def test_kept_edits_follow_the_one_keeps_the_person_rule():
    """An edit is kept when its seed-mean SSIM is at least the same-person reference
    (``faces.keeps_person``); without a reference the rows cannot be judged."""
    rows = fake({"top-prior": [0.17, 0.18]}, {"top-prior": [5.7, 5.7]}, reference=0.5)
    assert len(kept_edits(rows)) == 2  # SSIM 0.5 = the reference: kept
    assert kept_edits(fake({"top-prior": [0.17, 0.18]}, {"top-prior": [5.7, 5.7]},
                           reference=0.51)).empty
    with pytest.raises(ValueError, match="same_person_ssim"):
        kept_edits(rows[~rows["metric"].str.startswith("same_person")])
