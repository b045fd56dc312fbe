"""bplf.research.scoring: a grid's runs are measured by the one evaluator at their experiment's
settings, into a file that a rerun completes but never recomputes (the conditioning grid at the
"quick" budget, ``conftest.conditioning_runs``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bplf.research.conditioning import FidelityConfig
from bplf.research.evaluate import evaluate_checkpoint, tidy_rows
from bplf.research.experiments import FIDELITY_COLUMNS, grid_runs, read_fidelity
from bplf.research.metrics.faces import same_person_reference
from bplf.research.scoring import evaluate_grid, evaluate_run, with_reference


def test_a_run_is_measured_by_the_one_evaluator(conditioning_runs, synthetic_es):
    """``evaluate_run``'s rows are ``evaluate_checkpoint``'s tidy rows of the model at the
    experiment's sweep, the guidance written as the coupling rule's scale."""
    root, kwargs, rows = conditioning_runs
    cfg = FidelityConfig(per_emotion=3, edit_faces=4, mean_faces=4, temperatures=(0.7,),
                         guidance=(1.0, 3.0), methods=("mean", "swap"))
    (_, _, _, _, run), = grid_runs("conditioning", "quick", (0,), ["label-dropout"],
                                   kwargs["runs_dir"])[1]
    mine = pd.DataFrame(evaluate_run(run, synthetic_es, cfg))
    report = evaluate_checkpoint(run, device="cpu", n_per_emotion=3, edit_faces=4,
                                 sweep=cfg.sweep(), emotion_set=synthetic_es, floor=False,
                                 mean_faces=4)
    tidy = pd.DataFrame(tidy_rows(report))
    model = tidy[tidy["generator"].isin(["", "model"])]
    np.testing.assert_array_equal(mine["value"], model["value"])  # (NaN: no subjects)
    assert list(mine["metric"]) == list(model["metric"])
    swaps = mine[(mine["metric"] == "edit_hit_rate") & (mine["method"] == "swap")]
    assert sorted(swaps["guidance"]) == [1.0, 3.0]
    assert set(mine.loc[mine["metric"] == "sample_accuracy", "guidance"]) == {1.0, 3.0}
    assert mine.loc[mine["metric"] == "test_bpd", "guidance"].isna().all()




def test_a_rerun_evaluates_nothing_new(conditioning_runs, synthetic_es, small_scoring):
    root, kwargs, rows = conditioning_runs
    before = (root / "results" / "conditioning-fidelity.csv").read_text()
    again = evaluate_grid("conditioning", "quick", (0, 1), ["top-prior", "label-dropout"],
                          small_scoring, **kwargs, emotion_set=synthetic_es)
    assert (root / "results" / "conditioning-fidelity.csv").read_text() == before
    assert len(again) == len(rows)




def test_rows_without_a_reference_get_it_once(conditioning_runs, synthetic_es, small_scoring):
    """Rows written before the same-person reference was measured get it per run, computed on
    the faces; runs that have it keep theirs, and a rerun adds nothing."""
    root, kwargs, _ = conditioning_runs
    rows = pd.DataFrame([{"grid": "conditioning", "config": c, "seed": s, "metric": metric,
                          "source": "all", "value": value, "n": 10}
                         for c in ("top-prior", "old") for s in (0, 1)
                         for metric, value in (("test_bpd", 5.7), ("same_person_ssim", 0.6),
                                               ("same_person_rmse", 30.0))],
                        columns=FIDELITY_COLUMNS)
    old = rows[~((rows["config"] == "old") & rows["metric"].str.startswith("same_person"))]
    reference = {"n": 10, "ssim": 0.6, "rmse": 30.0}
    fixed = with_reference(old, reference)
    added = fixed.iloc[len(old):]
    assert set(zip(added["config"], added["seed"], added["metric"], strict=True)) == {
        ("old", s, f"same_person_{m}") for s in (0, 1) for m in ("ssim", "rmse")}
    assert list(added["value"]) == [0.6, 30.0, 0.6, 30.0] and (added["n"] == 10).all()
    assert with_reference(fixed, reference) is fixed
    # evaluate_grid completes a file written without it, from the faces it evaluates on
    path = root / "results" / "conditioning-fidelity.csv"
    before = read_fidelity("quick", "conditioning", root / "results")
    stripped = before[~before["metric"].str.startswith("same_person")]
    stripped.to_csv(path, index=False)
    again = evaluate_grid("conditioning", "quick", (0, 1), ["top-prior", "label-dropout"],
                          small_scoring, **kwargs, emotion_set=synthetic_es)
    assert len(again) == len(before)
    got = again[again["metric"] == "same_person_ssim"]["value"]
    expected = same_person_reference(synthetic_es)["ssim"]
    assert len(got) == 4 and (got.isna().all() if np.isnan(expected) else (got == expected).all())
