"""The noise experiment: its runs scored at part 1's recommended settings, raw and denoised
where a run was trained on noisy faces; summary, verdicts and the winning recipe by the noise
rule."""

from __future__ import annotations

import pandas as pd
import pytest

from bplf.course.viz import noise_figure
from bplf.guidance import Guidance
from bplf.pretrained import recommended
from bplf.research.experiments import FIDELITY_COLUMNS, run_grid
from bplf.research.noise import (
    DENOISED,
    RECOMMENDED_EDIT,
    RECOMMENDED_SAMPLES,
    NoiseScoring,
    chosen,
    summary,
    verdicts,
)
from bplf.research.scoring import evaluate_grid

CONFIGS = ["today", "noise-0.05"]


@pytest.fixture(scope="module")
def scored(synthetic_es, tmp_path_factory):
    root = tmp_path_factory.mktemp("noise")
    kwargs = dict(results_dir=root / "results", runs_dir=root / "runs")
    run_grid("noise", "quick", (0, 1), CONFIGS, device="cpu", emotion_set=synthetic_es, **kwargs)
    return evaluate_grid("noise", "quick", (0, 1), CONFIGS,
                         NoiseScoring(per_emotion=4, edit_faces=7, mean_faces=4),
                         emotion_set=synthetic_es, **kwargs)


def test_the_settings_are_part_ones_recommendation():
    rec = recommended()
    assert RECOMMENDED_SAMPLES == (rec["samples"]["temperature"],
                                   Guidance.of(rec["samples"]["guidance_config"]))
    edit = rec["edits"]
    assert RECOMMENDED_EDIT == (edit["method"], Guidance.of(edit["guidance_config"]),
                                edit["intensity"])


def test_only_noise_trained_runs_are_denoised(scored):
    assert list(scored.columns) == FIDELITY_COLUMNS
    samples = scored[scored["metric"] == "sample_joint_rate"]
    denoised = samples.groupby("config")["denoised"].apply(lambda d: sorted(set(d)))
    assert denoised["today"] == [False] and denoised["noise-0.05"] == [False, True]
    # both settings, each seed: the unguided one and the recommended one
    assert set(samples["guidance"]) == {"unguided", RECOMMENDED_SAMPLES[1].label()}
    edits = scored[(scored["metric"] == "edit_joint_rate") & (scored["config"] == "noise-0.05")]
    assert len(edits) == 4 and set(edits["method"]) == {RECOMMENDED_EDIT[0]}
    # a denoising step changes the faces: every seed's Fréchet distance differs from the raw one
    fd = scored[(scored["metric"] == "sample_fd") & (scored["config"] == "noise-0.05")]
    raw, den = (fd[fd["denoised"] == d].sort_values(["seed", "temperature"])["value"].to_numpy()
                for d in (False, True))
    assert len(raw) == len(den) == 4 and (raw != den).all()

def test_summary_and_verdicts_have_every_variant(scored):
    table = summary(scored)
    assert list(table.index) == ["today", "noise-0.05", "noise-0.05" + DENOISED]
    assert (table["seeds"] == 2).all()
    # clean bpd is measured once per run: the denoised variant shares it
    assert table.loc["noise-0.05", "clean test bpd"] == \
        table.loc["noise-0.05" + DENOISED, "clean test bpd"]
    assert table[["joint rate", "edit joint", "face rate"]].stack().between(0, 1).all()
    v = verdicts(scored)
    assert list(v.index) == ["noise-0.05", "noise-0.05" + DENOISED]
    assert set(v["better joint?"]) <= {"replicates", "does not replicate", "inconclusive"}
    assert chosen(scored) in table.index


def fake(joint: dict[str, list[float]], edit: dict[str, list[float]]) -> pd.DataFrame:
    """Rows of the noise grid where the recommended setting's joint rate and the recommended
    edit's joint hit-rate per seed are given (configs ending in DENOISED: the denoised rows)."""
    t, g = RECOMMENDED_SAMPLES
    method, eg, a = RECOMMENDED_EDIT
    rows = []
    for name in joint:
        config, denoised = name.removesuffix(DENOISED), name.endswith(DENOISED)
        for seed, (j, e) in enumerate(zip(joint[name], edit[name], strict=True)):
            common = {"grid": "noise", "config": config, "seed": seed, "source": "all",
                      "denoised": denoised, "n": 2000}
            rows.append(common | {"metric": "sample_joint_rate", "temperature": t,
                                  "guidance": g.label(), "value": j})
            rows.append(common | {"metric": "sample_fd", "temperature": 0.7,
                                  "guidance": "unguided", "value": 5.0 + seed})
            rows.append(common | {"metric": "edit_joint_rate", "method": method,
                                  "guidance": eg.label(), "intensity": a, "value": e})
            if not denoised:
                rows.append(common | {"metric": "test_bpd", "value": 5.6 + 0.01 * seed})
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)


def test_the_winner_beats_today_on_joint_rate_without_worse_edits():
    rows = fake({"today": [0.40, 0.42], "noise-0.05": [0.41, 0.41],
                 "noise-0.05" + DENOISED: [0.55, 0.57]},
                {"today": [0.50, 0.50], "noise-0.05": [0.50, 0.50],
                 "noise-0.05" + DENOISED: [0.51, 0.50]})
    v = verdicts(rows)
    assert v.loc["noise-0.05" + DENOISED, "better joint?"] == "replicates"
    assert v.loc["noise-0.05", "better joint?"] == "inconclusive"
    assert chosen(rows) == "noise-0.05" + DENOISED
    # the same samples, but its edits worse beyond noise: not the winner
    worse = fake({"today": [0.40, 0.42], "noise-0.05": [0.43, 0.43],
                  "noise-0.05" + DENOISED: [0.55, 0.57]},
                 {"today": [0.50, 0.50], "noise-0.05": [0.50, 0.50],
                  "noise-0.05" + DENOISED: [0.30, 0.31]})
    assert verdicts(worse).loc["noise-0.05" + DENOISED, "better edits?"] == "does not replicate"
    assert chosen(worse) == "noise-0.05"


def test_the_figure_has_a_bar_per_variant_in_every_panel(scored):
    fig = noise_figure(scored)
    assert [ax.get_title() for ax in fig.axes][0].startswith("joint rate")
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == ["today", "noise-0.05", "noise-0.05" + DENOISED]
        assert len(ax.patches) == 3
