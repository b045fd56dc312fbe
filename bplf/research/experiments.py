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
import multiprocessing
import os
import platform
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from bplf.data import EmotionSet, load_emotion_set
from bplf.flows import LabelConfig
from bplf.model import PRESETS, make_model
from bplf.research.evaluate import TIDY_COLUMNS, tidy_rows
from bplf.research.stats import compare, verdict
from bplf.runs import CHECKPOINT_FILE, METRICS_FILE, TrainConfig, load_run_config, read_metrics
from bplf.settings import REPO_ROOT, default_device
from bplf.train import Trainer, run_model
from bplf.utils import atomic_write, progress

RESULTS_DIR = REPO_ROOT / "results" / "ablations"
RUNS_DIR = REPO_ROOT / "runs" / "ablations"

class GridConfig(NamedTuple):
    """One config of a grid: a preset, its ModelConfig overrides and TrainConfig overrides (on
    top of the budget's); ``match``: the preset whose parameter count this config's width is
    chosen to match under every budget (``matched_width``)."""

    preset: str
    model: dict = {}
    train: dict = {}
    match: str | None = None


#: the label in every coupling, and in every split prior (label-aware flows, notebook 05)
_COUPLINGS = {"label": LabelConfig(splits=True, couplings=True)}
_CLASS_HEAD = {"label": LabelConfig(splits=True, couplings=True, class_head=True)}

#: grid -> config name -> GridConfig. The paper's claims: (a) three layers of 3x3 convolutions
#: are the best conventional conditioner; (b) PCA speeds up training. The conditioning grid:
#: where the emotion label enters, cumulatively (top prior, + split priors, + couplings, + Glow's
#: class loss), couplings trained with label dropout for guidance, and all of them together.
GRIDS: dict[str, dict[str, GridConfig]] = {
    "conditioner": {
        "depth1-3x3": GridConfig("bplf", {"coupling_depth": 1}),
        "depth2-3x3": GridConfig("bplf", {"coupling_depth": 2}),
        "depth3-3x3": GridConfig("bplf"),
        "depth4-3x3": GridConfig("bplf", {"coupling_depth": 4}),
        "depth3-1x1": GridConfig("bplf", {"kernel_size": 1}),
        "depth3-5x5": GridConfig("bplf", {"kernel_size": 5}),
    },
    "pca": {
        "none": GridConfig("bplf", {"pca": "none"}),
        "patch": GridConfig("bplf", {"pca": "patch"}),
        "patch-trainable": GridConfig("bplf", {"pca": "patch", "pca_trainable": True}),
        "zca": GridConfig("bplf", {"pca": "zca"}),
        "zca-trainable": GridConfig("bplf", {"pca": "zca", "pca_trainable": True}),
        "global": GridConfig("bplf", {"pca": "global"}),
        "global-trainable": GridConfig("bplf", {"pca": "global", "pca_trainable": True}),
    },
    "branches": {
        "both": GridConfig("bplf"),
        "conv": GridConfig("bplf", {"conditioner": "conv"}),
        "linear": GridConfig("bplf", {"conditioner": "linear"}),
    },
    "baselines": {
        "bplf": GridConfig("bplf"),
        "bplf-glow-size": GridConfig("bplf", match="glow"),
        "glow": GridConfig("glow"),
        "realnvp": GridConfig("realnvp"),
        "glow-normflows": GridConfig("glow-normflows"),
    },
    "conditioning": {
        "top-prior": GridConfig("bplf"),
        "split-priors": GridConfig("bplf", {"label": LabelConfig(splits=True)}),
        "couplings": GridConfig("bplf", _COUPLINGS),
        "class-loss": GridConfig("bplf", _CLASS_HEAD, {"class_loss_weight": 0.01}),
        "label-dropout": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15}),
        "all": GridConfig("bplf", _CLASS_HEAD, {"class_loss_weight": 0.01,
                                                "label_dropout": 0.15}),
    },
    # a sharper density (issue "Faces a person accepts, part 2"): today's recipe (the shipped
    # model's configuration), trained on faces with Gaussian noise (TrainConfig.noise_std; its
    # samples measured raw and after one Tweedie denoising step), with averaged weights
    # (TrainConfig.ema_decay), and both
    "noise": {
        "today": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15}),
        "noise-0.01": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15, "noise_std": 0.01}),
        "noise-0.025": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15,
                                                       "noise_std": 0.025}),
        "noise-0.05": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15, "noise_std": 0.05}),
        "ema": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15, "ema_decay": 0.999}),
        "noise-0.025-ema": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15,
                                                           "noise_std": 0.025,
                                                           "ema_decay": 0.999}),
    },
    # the shipped model's configuration in float32 and under bf16 autocast (TrainConfig.amp):
    # does bf16 cost bpd at equal steps?
    "precision": {
        "float32": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15}),
        "bf16": GridConfig("bplf", _COUPLINGS, {"label_dropout": 0.15, "amp": True}),
    },
}


def matched_width(preset: str, model: dict, target: str) -> int:
    """The ``hidden_channels`` that brings ``preset`` (with ``model`` overrides) closest to the
    parameter count of ``target`` with the same overrides (a fair comparison at equal size)."""
    goal = make_model(dataclasses.replace(PRESETS[target], **model)).num_parameters()

    def params(width: int) -> int:
        config = dataclasses.replace(PRESETS[preset], **{**model, "hidden_channels": width})
        return make_model(config).num_parameters()

    low, high = 1, 1024  # the parameter count grows with the width: bisect for the goal
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if params(mid) < goal else (low, mid)
    return min({max(low - 1, 1), low}, key=lambda w: abs(params(w) - goal))


def grid_overrides(config: GridConfig, budget_model: dict) -> dict:
    """A config's ModelConfig overrides under a budget: the budget's, then the config's, then
    the matched width."""
    model = {**budget_model, **config.model}
    if config.match:
        model["hidden_channels"] = matched_width(config.preset, model, config.match)
    return model


@dataclass
class Budget:
    """What every run of a grid gets: one training configuration (steps, batch, schedule,
    evaluation; the preset and seed are set per run) and ModelConfig overrides for all configs
    (a smaller model for a CPU budget)."""

    train: TrainConfig
    model: dict = field(default_factory=dict)


def _budget(steps: int, eval_interval: int, model: dict | None = None, **train) -> Budget:
    """A budget that evaluates, logs and checkpoints every ``eval_interval`` steps and samples
    once, at the end."""
    return Budget(TrainConfig(steps=steps, eval_interval=eval_interval,
                              log_interval=eval_interval, checkpoint_interval=eval_interval,
                              sample_interval=steps, **train), model or {})


#: named budgets: "gpu" trains the full-size presets on about as many images as "cpu" (400
#: steps of batch 256, TF32 on), so a whole grid fits a few minutes of one H100; "cpu" a
#: half-width, half-depth model of the same architecture for as many steps as a 2-core CPU
#: allows; "quick" proves the runner.
BUDGETS: dict[str, Budget] = {
    # the committed grids were run before the coupling scale floor existed: pinned to none, so
    # that their commands reproduce them
    "gpu": _budget(400, 50, {"coupling_min_scale": 0.0}, batch_size=256, warmup_steps=100,
                   val_size=1000, tf32=True),
    "cpu": _budget(1500, 150, {"hidden_channels": 32, "steps_per_level": 4,
                               "coupling_min_scale": 0.0}, warmup_steps=200, val_size=1000),
    # the cpu model for longer, with a cool-down: the shortest budget tried at which the
    # top-prior model's samples read as their emotion above chance (the conditioning grid)
    "cpu-long": _budget(4000, 500, {"hidden_channels": 32, "steps_per_level": 4},
                        warmup_steps=200, cooldown_steps=1000, val_size=1000),
    "quick": _budget(12, 6, {"hidden_channels": 8, "steps_per_level": 1}, batch_size=16,
                     warmup_steps=4, val_size=64, train_limit=400),
}

COLUMNS = ["grid", "config", "seed", "step", "wall", "train_bpd", "val_bpd", "params",
           "images_per_s", "budget", "hardware"]
#: the columns of a grid's fidelity file, ``<grid>-fidelity.csv`` (``bplf.research.scoring``)
FIDELITY_COLUMNS = ["grid", "config", "seed", "metric", "source", "method", "temperature",
                    "guidance", "denoised", "value", "n"]


def hardware(device: torch.device, concurrent: int = 1) -> str:
    """The device a result was measured on, in words (and how many runs shared it)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = (f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads, "
                f"{platform.machine()})")
    return name + (f", {concurrent} runs at once" if concurrent > 1 else "")


def run_key(preset: str, model: dict, train: TrainConfig) -> str:
    """A run directory's name (its seeds are subfolders): the same model and budget in two grids
    (the ``bplf`` preset is in every grid) is one run, trained once."""
    config = dataclasses.replace(PRESETS[preset], **model).to_dict()
    spec = {"model": config, "train": dataclasses.asdict(train)}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{preset}-{digest}"


def read_results(grid: str, budget: str = "cpu",
                 results_dir: Path | str | None = None) -> pd.DataFrame:
    """The tidy result rows of a grid under a named budget (empty if none yet);
    ``results_dir`` defaults to ``results/ablations/<budget>``."""
    path = Path(results_dir or RESULTS_DIR / budget) / f"{grid}.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)


def grid_runs(grid: str, budget: Budget | str, seeds: tuple[int, ...],
              configs: list[str] | None = None,
              runs_dir: Path | str = RUNS_DIR) -> tuple[str, list[tuple]]:
    """The budget's name and every (config, seed) run of ``grid`` under it, each as (config,
    seed, TrainConfig, model overrides, run directory). Unknown grid, config or budget names
    are refused."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; valid: {sorted(GRIDS)}")
    names = configs or list(GRIDS[grid])
    unknown = sorted(set(names) - set(GRIDS[grid]))
    if unknown:
        raise ValueError(f"unknown configs {unknown} for grid {grid!r}; valid: {list(GRIDS[grid])}")
    if isinstance(budget, str) and budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; valid: {sorted(BUDGETS)}")
    budget_name = budget if isinstance(budget, str) else "custom"
    budget = BUDGETS[budget] if isinstance(budget, str) else budget
    runs = []
    for name in names:
        config = GRIDS[grid][name]
        model = grid_overrides(config, budget.model)
        train = dataclasses.replace(budget.train, **config.train)
        key = run_key(config.preset, model, train)
        runs += [(name, seed, dataclasses.replace(train, preset=config.preset, seed=seed),
                  model, Path(runs_dir) / key / f"seed{seed}") for seed in seeds]
    return budget_name, runs


def _pending(grid: str, budget: Budget | str, seeds: tuple[int, ...],
             configs: list[str] | None, results_dir: Path | str | None,
             runs_dir: Path | str) -> tuple[str, Path, list[tuple]]:
    """The budget's name, the grid's results folder, and the runs of ``grid_runs`` not yet in
    the results file."""
    budget_name, runs = grid_runs(grid, budget, seeds, configs, runs_dir)
    results_dir = Path(results_dir or RESULTS_DIR / budget_name)
    done = read_results(grid, results_dir=results_dir)
    have = set(zip(done["config"], done["seed"], strict=True))
    return budget_name, results_dir, [r for r in runs if (r[0], r[1]) not in have]


def finished(out: Path, steps: int) -> bool:
    """Whether the run in ``out`` has trained and logged all ``steps``."""
    if not (out / CHECKPOINT_FILE).exists() or not (out / METRICS_FILE).exists():
        return False
    rows = read_metrics(out)
    return bool(rows) and rows[-1]["step"] >= steps


def run_grid(grid: str, budget: Budget | str = "cpu", seeds: tuple[int, ...] = (0, 1, 2),
             configs: list[str] | None = None, results_dir: Path | str | None = None,
             runs_dir: Path | str = RUNS_DIR, device: torch.device | str | None = None,
             emotion_set=None, concurrent: int = 1) -> pd.DataFrame:
    """Train every (config, seed) of ``grid`` not yet in its results file; returns all rows.

    Results go to ``results_dir`` (default ``results/ablations/<budget>``); ``concurrent``
    only notes in the hardware column how many runs shared the device (see ``run_grids``)."""
    budget_name, results_dir, runs = _pending(grid, budget, seeds, configs, results_dir,
                                              runs_dir)
    device = torch.device(device) if device else default_device()
    for name, seed, cfg, model, out in runs:
        if not finished(out, cfg.steps):  # else another grid or a worker trained it
            _train(cfg, out, model, device, emotion_set)
        params = make_model(load_run_config(out)[0]).num_parameters()
        rows = [{"grid": grid, "config": name, "seed": seed, "step": r["step"],
                 "wall": r["wall"], "train_bpd": r["train_bpd"], "val_bpd": r["val_bpd"],
                 "params": params, "images_per_s": r["images_per_s"],
                 "budget": budget_name, "hardware": hardware(device, concurrent)}
                for r in read_metrics(out) if "val_bpd" in r]
        table = pd.concat([read_results(grid, results_dir=results_dir),
                           pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)
        atomic_write(results_dir / f"{grid}.csv",
                     lambda tmp, t=table: t.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL))
    return read_results(grid, results_dir=results_dir)


def _train(cfg: TrainConfig, out: Path, model: dict, device: torch.device | str,
           emotion_set: EmotionSet | None = None) -> None:
    """Train (or resume) one run of a grid: the preset of ``cfg`` with ``model`` overrides."""
    es = emotion_set if emotion_set is not None else load_emotion_set()
    Trainer(run_model(cfg, model, es.images.shape[-1]), cfg, out, device, es).fit(resume=True)


def _train_one(cfg: TrainConfig, out: Path, model: dict, device: str, emotion_set=None) -> None:
    """A run in a worker process, on one CPU thread (the device does the work)."""
    torch.set_num_threads(1)
    _train(cfg, out, model, device, emotion_set)


def run_grids(grids: list[str], budget: Budget | str = "gpu", seeds: tuple[int, ...] = (0, 1, 2),
              workers: int = 1, configs: list[str] | None = None,
              results_dir: Path | str | None = None, runs_dir: Path | str = RUNS_DIR,
              device: torch.device | str | None = None,
              emotion_set=None) -> dict[str, pd.DataFrame]:
    """``run_grid`` for each of ``grids``; with ``workers`` > 1 their distinct pending runs first
    train that many at a time, each in its own process on the same device.

    One process leaves a GPU mostly idle on flows this small: on an H100, 8 processes at batch
    256 trained 3.3x more images/s in total than one (16 at batch 64: 5.6x). The grids' CSVs
    are then written from the runs' logs, as ``run_grid`` would."""
    if configs and len(grids) > 1:
        raise ValueError("configs name the configs of a single grid")
    device = torch.device(device) if device else default_device()
    if workers > 1:
        # a run two grids share (the bplf preset) has one directory, so it is trained once
        pending = {out: (cfg, out, model, str(device), emotion_set) for grid in grids
                   for _, _, cfg, model, out in _pending(grid, budget, seeds, configs,
                                                         results_dir, runs_dir)[2]}
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = [pool.submit(_train_one, *args) for args in pending.values()]
            for job in progress(as_completed(jobs), total=len(jobs), desc="runs"):
                job.result()
    return {grid: run_grid(grid, budget, seeds, configs, results_dir, runs_dir, device,
                           emotion_set, concurrent=workers)
            for grid in grids}


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


def _last_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run (config, seed)."""
    return results.sort_values("step").groupby(["config", "seed"]).tail(1)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per config: final val bpd (mean, std, n seeds), parameters, training images/s."""
    table = _last_rows(results).groupby("config").agg(
        final_bpd=("val_bpd", "mean"), spread=("val_bpd", "std"), seeds=("seed", "nunique"),
        params=("params", "first"), images_per_s=("images_per_s", "median"),
        steps=("step", "max"), wall_s=("wall", "mean"))
    return table.sort_values("final_bpd")


def side_by_side(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``summary`` of one grid under several budgets (``{budget: rows}``), columns grouped by
    budget, configs in the first budget's order."""
    tables = {b: summary(r)[["final_bpd", "spread", "seeds", "params", "images_per_s"]]
              for b, r in results.items() if not r.empty}
    return pd.concat(tables, axis=1) if tables else pd.DataFrame()


def read_fidelity(budget: str = "gpu", grid: str | None = None,
                  results_dir: Path | str | None = None) -> pd.DataFrame:
    """The fidelity figures of a budget's runs, one figure per row (``bplf.research.evaluate``'s
    tidy rows), from ``results/ablations/<budget>`` (or ``results_dir``).

    With ``grid``: the rows of every run of that grid, ``<grid>-fidelity.csv``
    (``FIDELITY_COLUMNS``, ``denoised`` False in files written before it existed; empty if none
    yet: ``python -m bplf ablate-fidelity``). Without: the
    rows of each report ``fidelity/<grid>-<config>.json``, the output of ``python -m bplf
    evaluate --checkpoint RUN --per-emotion N --output FILE`` (columns grid, config and
    ``bplf.research.evaluate.TIDY_COLUMNS``)."""
    folder = Path(results_dir or RESULTS_DIR / budget)
    if grid is not None:
        path = folder / f"{grid}-fidelity.csv"
        if not path.exists():
            return pd.DataFrame(columns=FIDELITY_COLUMNS)
        rows = pd.read_csv(path)
        rows["denoised"] = rows["denoised"].astype(bool) if "denoised" in rows else False
        return rows[FIDELITY_COLUMNS]
    rows = []
    for path in sorted((folder / "fidelity").glob("*.json")):
        name, config = path.stem.split("-", 1)
        rows += [{"grid": name, "config": config, **r}
                 for r in tidy_rows(json.loads(path.read_text()))]
    return pd.DataFrame(rows, columns=["grid", "config", *TIDY_COLUMNS])


def final_bpd(results: pd.DataFrame) -> pd.DataFrame:
    """The last evaluation of each run: columns config, seed, value (its val bpd)."""
    final = _last_rows(results)
    return final[["config", "seed"]].assign(value=final["val_bpd"].to_numpy())


def steps_table(results: pd.DataFrame, targets: tuple[float, ...], baseline: str) -> pd.DataFrame:
    """Per config: mean steps to each val bpd target and final bpd; for every config but
    ``baseline``, whether it gets there faster (a ``verdict`` on steps, ratio to the baseline)
    and ends lower. A run that never reaches a target counts as the budget plus one evaluation,
    which can only flatter the config that failed."""
    censored = results["step"].max() + results["step"].min()  # the first evaluation: 1 interval
    final = final_bpd(results)
    reached = {t: steps_to_target(results, t) for t in targets}
    reached = {t: h.assign(value=h["step"].fillna(censored)) for t, h in reached.items()}
    rows = []
    for config in results["config"].unique():
        row = {"config": config, "seeds": int((final["config"] == config).sum())}
        for t, values in reached.items():
            row[f"steps to {t}"] = values.loc[values["config"] == config, "value"].mean()
            if config != baseline:
                c = compare(values, config, baseline)
                row[f"ratio ({t})"] = c["ratio"]
                row[f"faster to {t}?"] = verdict([c])
        row["final bpd"] = final.loc[final["config"] == config, "value"].mean()
        if config != baseline:
            row["better at equal budget?"] = verdict([compare(final, config, baseline)])
        rows.append(row)
    return pd.DataFrame(rows).set_index("config")
