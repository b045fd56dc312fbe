"""Ablation grids: named model configs trained on identical data, seeds and budget.

Every run of a grid uses the same ``Budget`` (steps, batch, learning rate, evaluation
schedule) and, for a given seed, the very same batches (the trainer's data generator depends
only on the seed). Results are tidy: one row per run per evaluation, with step and wall time, in
``results/ablations/<grid>.csv`` (notebook 06 reads them). A grid can be stopped and rerun: runs
already in the file are skipped, an interrupted run resumes from its checkpoint, and a config
that another grid has already trained with the same budget and seed is read, not retrained.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bplf.model import PRESETS
from bplf.settings import REPO_ROOT, default_device
from bplf.train import TrainConfig, Trainer, read_metrics
from bplf.utils import atomic_write, check_fields

RESULTS_DIR = REPO_ROOT / "results" / "ablations"
RUNS_DIR = REPO_ROOT / "runs" / "ablations"

#: grid -> config name -> (preset, ModelConfig overrides). The paper's claims: (a) three layers
#: of 3x3 convolutions are the best conventional conditioner; (b) PCA speeds up training.
GRIDS: dict[str, dict[str, tuple[str, dict]]] = {
    "conditioner": {
        "depth1-3x3": ("bplf", {"coupling_depth": 1}),
        "depth2-3x3": ("bplf", {"coupling_depth": 2}),
        "depth3-3x3": ("bplf", {}),
        "depth4-3x3": ("bplf", {"coupling_depth": 4}),
        "depth3-1x1": ("bplf", {"kernel_size": 1}),
        "depth3-5x5": ("bplf", {"kernel_size": 5}),
    },
    "pca": {
        "none": ("bplf", {"pca": "none"}),
        "patch": ("bplf", {"pca": "patch"}),
        "patch-trainable": ("bplf", {"pca": "patch", "pca_trainable": True}),
        "zca": ("bplf", {"pca": "zca"}),
        "zca-trainable": ("bplf", {"pca": "zca", "pca_trainable": True}),
        "global": ("bplf", {"pca": "global"}),
        "global-trainable": ("bplf", {"pca": "global", "pca_trainable": True}),
    },
    "branches": {
        "both": ("bplf", {}),
        "conv": ("bplf", {"conditioner": "conv"}),
        "linear": ("bplf", {"conditioner": "linear"}),
    },
    "baselines": {
        "bplf": ("bplf", {}),
        "glow": ("glow", {}),
        "realnvp": ("realnvp", {}),
    },
}


@dataclass
class Budget:
    """What every run of a grid gets: the same steps, batch, schedule and evaluation."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 200
    eval_interval: int = 250
    val_size: int = 1000
    train_limit: int | None = None
    #: ModelConfig overrides applied to every config (a smaller model for a CPU budget)
    base: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> Budget:
        check_fields(cls, d)
        return cls(**d)


#: named budgets: "gpu" trains the full-size presets; "cpu" a half-width, half-depth model of
#: the same architecture for as many steps as a 2-core CPU allows; "quick" proves the runner.
BUDGETS: dict[str, Budget] = {
    "gpu": Budget(steps=10_000, eval_interval=500, val_size=2000),
    "cpu": Budget(steps=1500, eval_interval=150, val_size=1000,
                  base={"hidden_channels": 32, "steps_per_level": 4}),
    "quick": Budget(steps=12, batch_size=16, warmup_steps=4, eval_interval=6, val_size=64,
                    train_limit=400, base={"hidden_channels": 8, "steps_per_level": 1}),
}

COLUMNS = ["grid", "config", "seed", "step", "wall", "train_bpd", "val_bpd", "params",
           "images_per_s", "budget", "hardware"]


def hardware(device: torch.device) -> str:
    """The device a result was measured on, in words."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads, {platform.machine()})"


def run_key(preset: str, model: dict, budget: Budget) -> str:
    """A run directory's name: the same model and budget in two grids (the ``bplf`` preset is in
    every grid) is one run, trained once."""
    config = dataclasses.replace(PRESETS[preset], **model).to_dict()
    spec = {"model": config, "budget": {k: v for k, v in vars(budget).items() if k != "base"}}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{preset}-{digest}"


def read_results(grid: str, results_dir: Path | str = RESULTS_DIR) -> pd.DataFrame:
    """The tidy result rows of a grid (empty if none yet)."""
    path = Path(results_dir) / f"{grid}.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)


def run_grid(grid: str, budget: Budget | str = "cpu", seeds: tuple[int, ...] = (0, 1, 2),
             configs: list[str] | None = None, results_dir: Path | str = RESULTS_DIR,
             runs_dir: Path | str = RUNS_DIR, device: torch.device | str | None = None,
             emotion_set=None) -> pd.DataFrame:
    """Train every (config, seed) of ``grid`` not yet in its results file; returns all rows."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; valid: {sorted(GRIDS)}")
    names = configs or list(GRIDS[grid])
    unknown = sorted(set(names) - set(GRIDS[grid]))
    if unknown:
        raise ValueError(f"unknown configs {unknown} for grid {grid!r}; valid: {list(GRIDS[grid])}")
    budget_name = budget if isinstance(budget, str) else "custom"
    budget = BUDGETS[budget] if isinstance(budget, str) else budget
    device = torch.device(device) if device else default_device()
    path = Path(results_dir) / f"{grid}.csv"
    for name in names:
        for seed in seeds:
            done = read_results(grid, results_dir)
            if ((done["config"] == name) & (done["seed"] == seed)).any():
                continue
            preset, overrides = GRIDS[grid][name]
            cfg = TrainConfig(preset=preset, steps=budget.steps, batch_size=budget.batch_size,
                              lr=budget.lr, warmup_steps=budget.warmup_steps, seed=seed,
                              eval_interval=budget.eval_interval, val_size=budget.val_size,
                              train_limit=budget.train_limit, log_interval=budget.eval_interval,
                              sample_interval=budget.steps,
                              checkpoint_interval=budget.eval_interval)
            out = Path(runs_dir) / run_key(preset, {**budget.base, **overrides}, budget) / \
                f"seed{seed}"
            trainer = Trainer(cfg, out, {**budget.base, **overrides}, device, emotion_set)
            trainer.fit(resume=True)
            rows = [{"grid": grid, "config": name, "seed": seed, "step": r["step"],
                     "wall": r["wall"], "train_bpd": r["train_bpd"], "val_bpd": r["val_bpd"],
                     "params": trainer.model.num_parameters(), "images_per_s": r["images_per_s"],
                     "budget": budget_name, "hardware": hardware(device)}
                    for r in read_metrics(out) if "val_bpd" in r]
            table = pd.concat([done, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)
            atomic_write(path, lambda tmp, t=table: t.to_csv(tmp, index=False,
                                                            quoting=csv.QUOTE_MINIMAL))
    return read_results(grid, results_dir)


def steps_to_target(results: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per config and seed: the first evaluation step and wall time with val bpd <= target
    (NaN where the budget never reached it)."""
    out = []
    for (config, seed), runs in results.sort_values("step").groupby(["config", "seed"]):
        hit = runs[runs["val_bpd"] <= target]
        out.append({"config": config, "seed": seed, "target": target,
                    "step": hit["step"].iloc[0] if len(hit) else np.nan,
                    "wall": hit["wall"].iloc[0] if len(hit) else np.nan})
    return pd.DataFrame(out)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per config: final val bpd (mean, std, n seeds), parameters, training images/s."""
    final = results.sort_values("step").groupby(["config", "seed"]).tail(1)
    table = final.groupby("config").agg(
        final_bpd=("val_bpd", "mean"), spread=("val_bpd", "std"), seeds=("seed", "nunique"),
        params=("params", "first"), images_per_s=("images_per_s", "median"),
        steps=("step", "max"), wall_s=("wall", "mean"))
    return table.sort_values("final_bpd")



def final_bpd(results: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run: columns config, seed, value (its val bpd)."""
    final = results.sort_values("step").groupby(["config", "seed"]).tail(1)
    return final[["config", "seed"]].assign(value=final["val_bpd"].to_numpy())


def compare(values: pd.DataFrame, a: str, b: str) -> dict:
    """Mean ``value`` of config ``a`` minus config ``b`` over seeds (negative: ``a`` is better,
    lower), with its standard error; ``within_noise`` when |diff| < 2 standard errors (None when
    a config has fewer than 2 seeds, so no error can be estimated). ``values``: columns config,
    seed, value (``final_bpd``, or steps to a target)."""
    va = values.loc[values["config"] == a, "value"]
    vb = values.loc[values["config"] == b, "value"]
    if va.empty or vb.empty:
        raise ValueError(f"no results for {a if va.empty else b!r}")
    diff = float(va.mean() - vb.mean())
    enough = len(va) > 1 and len(vb) > 1
    se = float(np.sqrt(va.var() / len(va) + vb.var() / len(vb))) if enough else float("nan")
    return {"a": a, "b": b, "diff": diff, "se": se, "ratio": float(va.mean() / vb.mean()),
            "seeds": (len(va), len(vb)),
            "within_noise": bool(abs(diff) < 2 * se) if enough else None}


def verdict(comparisons: list[dict]) -> str:
    """"replicates" when ``a`` beats every ``b`` beyond noise, "does not replicate" when some
    ``b`` beats ``a`` beyond noise, else "inconclusive" (lower is better in every comparison)."""
    if any(c["within_noise"] is False and c["diff"] > 0 for c in comparisons):
        return "does not replicate"
    if comparisons and all(c["within_noise"] is False and c["diff"] < 0 for c in comparisons):
        return "replicates"
    return "inconclusive"
