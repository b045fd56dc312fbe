"""The noise experiment: its runs scored at part 1's recommended settings, raw and denoised
where a run was trained on noisy faces; summary, verdicts and the winning recipe by the noise
rule."""

from __future__ import annotations

import pandas as pd
import pytest

from bplf.course.viz import noise_figure
from bplf.guidance import Guidance
from bplf.pretrained import LIKELIHOOD_DIR, recommended
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
    rec = recommended(LIKELIHOOD_DIR)
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


def _report(name: str, unguided: dict, diverse: dict, rec: dict, edit: dict, bpd: float,
            denoised: bool = False) -> dict:
    from bplf.research.metrics.fidelity import CEILING

    def row(t, g, **figures):
        return {"generator": name, "temperature": t, "guidance": g, "denoised": denoised,
                **figures}

    return {"checkpoint": name,
            "fidelity": [{"generator": CEILING, "face_rate": 0.6},
                         row(0.7, "unguided", **unguided), row(1.0, "unguided", **diverse)],
            "recommended": {"samples": rec, "edits": edit},
            "sources": {"fer2013": {"marginal_bpd": bpd}}}


def test_the_samplers_targets_compare_it_with_part_one():
    from bplf.research.noise import targets

    part1 = _report("part1", {"fd": 6.4, "joint_rate": 0.2, "pair_ssim": 0.2, "face_rate": 0.8},
                    {"fd": 4.3, "joint_rate": 0.1, "pair_ssim": 0.08, "face_rate": 0.4},
                    {"joint_rate": 0.55, "pair_ssim": 0.29},
                    {"joint_rate": 0.52, "meets_rule": True}, 5.31)
    sampler = _report("sampler", {"fd": 3.2, "joint_rate": 0.3, "pair_ssim": 0.14,
                                  "face_rate": 0.9},
                      {"fd": 3.0, "joint_rate": 0.2, "pair_ssim": 0.1, "face_rate": 0.7},
                      {"joint_rate": 0.6, "pair_ssim": 0.2},
                      {"joint_rate": 0.45, "meets_rule": True}, 5.4, denoised=True)
    t = targets(sampler, part1)
    assert list(t["met"]) == [True, True, False, True, False, True, False]
    assert t.loc["unguided FD, T 0.7", "part 1"] == 6.4
    # the most diverse settings: the unguided T 0.7 row (0.14, a face rate of 0.9) qualifies
    assert t.iloc[2]["sampler"] == 0.3
    sampler["recommended"]["edits"]["meets_rule"] = False  # the edit loses the person
    sampler["fidelity"][1]["fd"] = 3.3  # more than half of part 1's
    t = targets(sampler, part1)
    assert not t.iloc[0]["met"] and not t.iloc[5]["met"]
    missed = t["missed by"].to_numpy()
    assert missed == pytest.approx([0.1, 0, 0.25, 0, 0.05, 0, 0.08])


def test_progress_reads_the_run_by_step_and_steps_to_reads_its_curve(tmp_path):
    """The unguided samples along a run: step 0 from the model it started from, each stepN.json,
    and the sampler at its model.pt's step; the curve read in log(step)."""
    import json
    import math

    import torch

    from bplf.research.noise import progress, steps_to

    def report(name, fd, joint, denoised=True):
        return _report(name, {"fd": fd, "joint_rate": joint, "pair_ssim": 0.2,
                              "face_rate": 0.8}, {"fd": 4.0, "joint_rate": 0.1,
                                                  "pair_ssim": 0.1, "face_rate": 0.5},
                       {}, {}, 5.4, denoised)

    folder, sampler = tmp_path / "progress", tmp_path / "sampler"
    folder.mkdir(), sampler.mkdir()
    (folder / "step100.json").write_text(json.dumps(report("step100", 6.0, 0.22)))
    (folder / "step1000.json").write_text(json.dumps(report("step1000", 5.0, 0.25)))
    (sampler / "evaluation.json").write_text(json.dumps(report("sampler", 4.0, 0.3)))
    torch.save({"model": {}, "state": {"step": 10000}}, sampler / "model.pt")
    table = progress(folder, sampler, report("part1", 6.4, 0.2, denoised=False))
    assert list(table.index) == [0, 100, 1000, 10000]
    assert list(table["FD"]) == [6.4, 6.0, 5.0, 4.0] and table.loc[10000, "joint rate"] == 0.3
    # FD falls by 1 per tenfold steps: 3.0 at 100,000
    assert steps_to(table, "FD", 3.0) == pytest.approx(1e5)
    assert steps_to(table, "FD", 7.0) == math.inf  # behind it, not ahead
