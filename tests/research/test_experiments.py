"""The ablation runner: identical data and budget per grid, tidy resumable results."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bplf.model import PRESETS, make_model
from bplf.research.experiments import (
    BUDGETS,
    GRIDS,
    grid_overrides,
    read_results,
    run_grid,
    run_grids,
    side_by_side,
    steps_to_target,
    summary,
)
from bplf.runs import TrainConfig
from bplf.train import Trainer, run_model


@pytest.fixture(scope="module")
def es(synthetic_es):
    return synthetic_es


def test_grids_name_the_paper_axes():
    assert {"depth1-3x3", "depth2-3x3", "depth3-3x3", "depth3-1x1", "depth3-5x5"} <= set(
        GRIDS["conditioner"])
    assert {"none", "patch", "zca", "global"} <= set(GRIDS["pca"])
    assert set(GRIDS["branches"]) == {"both", "conv", "linear"}
    assert set(GRIDS["conditioning"]) == {"top-prior", "split-priors", "couplings", "class-loss",
                                          "label-dropout", "all"}


@pytest.mark.parametrize("budget", sorted(BUDGETS))
def test_the_size_matched_bplf_has_glows_parameter_count_under_every_budget(budget):
    """Within 5% of glow's parameters, whatever width the budget gives both."""
    config = GRIDS["baselines"]["bplf-glow-size"]
    model = grid_overrides(config, BUDGETS[budget].model)
    size = make_model(dataclasses.replace(PRESETS["bplf"], **model)).num_parameters()
    glow = make_model(dataclasses.replace(PRESETS["glow"], **BUDGETS[budget].model))
    assert abs(size / glow.num_parameters() - 1) < 0.05
    wider = {**model, "hidden_channels": model["hidden_channels"] + 1}
    assert make_model(dataclasses.replace(PRESETS["bplf"], **wider)).num_parameters() > size
    full = make_model(dataclasses.replace(PRESETS["bplf"], **BUDGETS[budget].model))
    assert full.num_parameters() > size  # the preset at the budget's width is larger


def test_run_grid_writes_tidy_rows_and_skips_done_runs(es, tmp_path):
    kwargs = dict(results_dir=tmp_path / "results", runs_dir=tmp_path / "runs", device="cpu",
                  emotion_set=es)
    rows = run_grid("branches", "quick", seeds=(0, 1), configs=["both", "linear"], **kwargs)
    budget = BUDGETS["quick"]
    evals = budget.train.steps // budget.train.eval_interval
    assert len(rows) == 2 * 2 * evals  # one row per run per evaluation
    assert set(rows["config"]) == {"both", "linear"} and set(rows["seed"]) == {0, 1}
    assert rows["wall"].gt(0).all() and rows["val_bpd"].between(0, 12).all()
    # the linear-only conditioner has fewer parameters than both branches
    params = rows.groupby("config")["params"].first()
    assert params["linear"] < params["both"]
    # rerunning is a no-op: nothing retrained, the file unchanged
    before = (tmp_path / "results" / "branches.csv").read_text()
    again = run_grid("branches", "quick", seeds=(0, 1), configs=["both", "linear"], **kwargs)
    assert (tmp_path / "results" / "branches.csv").read_text() == before
    assert len(again) == len(rows)
    table = summary(again)
    assert list(table["seeds"]) == [2, 2] and (table["steps"] == budget.train.steps).all()
    hit = steps_to_target(again, target=float(again["val_bpd"].max()))
    assert (hit["step"] == budget.train.eval_interval).all()  # the worst bpd is reached at once
    never = steps_to_target(again, target=0.0)
    assert never["step"].isna().all()
    assert read_results("pca", results_dir=tmp_path / "results").empty
    # "both" is the bplf preset, as is "patch" in the pca grid: trained once, read twice
    pca = run_grid("pca", "quick", seeds=(1,), configs=["patch"], **kwargs)
    shared = rows[(rows["config"] == "both") & (rows["seed"] == 1)]
    assert pca["val_bpd"].tolist() == shared["val_bpd"].tolist()
    assert pca["wall"].tolist() == shared["wall"].tolist()


def test_parallel_workers_train_the_same_runs(es, tmp_path):
    """run_grids with 2 worker processes writes the rows a sequential run_grid writes."""
    kwargs = dict(device="cpu", emotion_set=es)
    alone = run_grid("branches", "quick", seeds=(0,), results_dir=tmp_path / "r1",
                     runs_dir=tmp_path / "runs1", **kwargs)
    both = run_grids(["branches", "baselines"], "quick", seeds=(0,), workers=2,
                     results_dir=tmp_path / "r2", runs_dir=tmp_path / "runs2", **kwargs)
    rows = both["branches"]
    assert (rows["hardware"].str.endswith("2 runs at once")).all()
    cols = ["config", "seed", "step", "train_bpd", "val_bpd", "params"]
    key = ["config", "step"]
    assert alone[cols].sort_values(key).reset_index(drop=True).equals(
        rows[cols].sort_values(key).reset_index(drop=True))
    # the bplf preset is shared by the two grids: trained once, by one worker
    assert len(list((tmp_path / "runs2").iterdir())) == len(GRIDS["branches"]) + len(
        GRIDS["baselines"]) - 1
    table = side_by_side({"cpu": rows, "none": rows.iloc[:0]})
    assert list(table.columns.get_level_values(0).unique()) == ["cpu"]
    assert table.loc["both", ("cpu", "final_bpd")] == summary(rows).loc["both", "final_bpd"]
    base = both["baselines"]
    assert set(base["config"]) == set(GRIDS["baselines"])
    assert (base.loc[base["config"] == "bplf", "val_bpd"].to_numpy()
            == rows.loc[rows["config"] == "both", "val_bpd"].to_numpy()).all()


def test_run_grid_refuses_unknown_names(es, tmp_path):
    with pytest.raises(ValueError, match="unknown grid"):
        run_grid("optimizer", "quick", emotion_set=es, results_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown configs"):
        run_grid("pca", "quick", configs=["pcaa"], emotion_set=es, results_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown budget"):
        run_grid("pca", "tpu", emotion_set=es, results_dir=tmp_path)


def test_every_config_trains_on_the_same_batches(es, tmp_path):
    """For one seed, the batches after initialisation do not depend on the model config."""
    cfg = TrainConfig(seed=3, init_size=32, pca_fit_size=256, train_limit=300, val_size=16)
    batches = []
    for name in ("none", "global", "patch"):
        model = {**BUDGETS["quick"].model, **GRIDS["pca"][name].model}
        trainer = Trainer(run_model(cfg, model, 48), cfg, tmp_path / name, "cpu", es)
        trainer.initialize()
        batches.append(trainer._global_batch(8))
    for x, y in batches[1:]:
        assert torch.equal(x, batches[0][0]) and torch.equal(y, batches[0][1])


def test_steps_table():
    import pandas as pd

    from bplf.research.experiments import final_bpd, steps_table
    from bplf.research.stats import claim

    # two seeds each; "fast" reaches 6.0 at step 10 and ends at 5.5, "slow" at step 30 and 5.9,
    # "never" stays above 6.0
    curves = {"fast": [6.2, 5.9, 5.6, 5.5], "slow": [6.4, 6.2, 5.95, 5.9],
              "never": [6.5, 6.4, 6.3, 6.2]}
    rows = [{"config": c, "seed": seed, "step": 10 * (i + 1), "wall": float(i),
             "val_bpd": bpd + 0.01 * seed}
            for c, curve in curves.items() for seed in (0, 1) for i, bpd in enumerate(curve)]
    results = pd.DataFrame(rows)
    table = steps_table(results, (6.0,), baseline="slow")
    assert table.loc["fast", "steps to 6.0"] == 20 and table.loc["slow", "steps to 6.0"] == 30
    assert table.loc["never", "steps to 6.0"] == 50  # never reached: the budget + one interval
    assert table.loc["fast", "faster to 6.0?"] == "replicates"
    assert table.loc["never", "better at equal budget?"] == "does not replicate"
    assert table.loc["fast", "ratio (6.0)"] == pytest.approx(2 / 3)
    final = final_bpd(results)  # the claim of notebook 06: which config ends lowest
    assert final.loc[final["config"] == "fast", "value"].tolist() == [5.5, 5.51]
    assert claim(final, "fast")[0] == "replicates"
