"""Scoring an ablation grid's runs by the one evaluator (notebook 06): every trained run's
``best.pt`` measured on the test split by ``bplf.research.evaluate.evaluate_checkpoint`` at its
experiment's settings (a ``GridScoring``: ``bplf.research.conditioning.FidelityConfig``,
``bplf.research.noise.NoiseScoring``), its tidy rows kept in
``results/ablations/<budget>/<grid>-fidelity.csv`` (``experiments.read_fidelity``). A rerun
evaluates only the runs not in the file; the file is rewritten atomically after each run.
"""

from __future__ import annotations

import csv
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bplf.data import EmotionSet, load_emotion_set
from bplf.research.evaluate import Sweep, evaluate_checkpoint, tidy_rows
from bplf.research.experiments import (
    FIDELITY_COLUMNS,
    RESULTS_DIR,
    RUNS_DIR,
    finished,
    grid_runs,
    read_fidelity,
)
from bplf.research.metrics.faces import same_person_reference
from bplf.settings import setup_cpu
from bplf.utils import atomic_write, progress


@dataclass
class GridScoring:
    """How much of each measurement: samples per emotion and setting, test faces edited (each
    toward the 6 other emotions), train faces per emotion for the ``mean`` method's latents.
    An experiment says which settings (``sweep``) and how its guidance is written in the rows
    (``guidance_column``)."""

    per_emotion: int = 300
    edit_faces: int = 200
    mean_faces: int = 200

    def sweep(self) -> Sweep:
        raise NotImplementedError

    def guidance_column(self, label: str):
        """The ``guidance`` column of a row measured at guidance ``label`` ("" where none)."""
        return label if label else np.nan


def evaluate_run(run: Path | str, es: EmotionSet, cfg: GridScoring,
                 classifier: Path | str | None = None) -> list[dict]:
    """The rows of one run (without its grid, config and seed), on ``es``'s test split: the
    model's ``tidy_rows`` of ``evaluate_checkpoint`` at ``cfg.sweep()`` (no floor), the guidance
    written by ``cfg.guidance_column``."""
    report = evaluate_checkpoint(run, device="cpu", classifier=classifier,
                                 n_per_emotion=cfg.per_emotion, edit_faces=cfg.edit_faces,
                                 sweep=cfg.sweep(), emotion_set=es, floor=False,
                                 mean_faces=cfg.mean_faces)
    return [{k: r[k] for k in FIDELITY_COLUMNS if k in r}
            | {"guidance": cfg.guidance_column(r["guidance"])}
            for r in tidy_rows(report) if r["generator"] in ("", "model")]


def _evaluate_one(run: Path, cfg: GridScoring, threads: int) -> list[dict]:
    """``evaluate_run`` in a worker process on ``threads`` CPU threads."""
    torch.set_num_threads(threads)
    setup_cpu()
    return evaluate_run(run, load_emotion_set(), cfg)


def with_reference(rows: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """``rows`` with the same-person reference (``faces.same_person_reference`` of the faces
    evaluated on) added to every run that lacks it: rows written before it was measured."""
    runs = rows[["grid", "config", "seed"]].drop_duplicates()
    have = rows.loc[rows["metric"] == "same_person_ssim", ["grid", "config", "seed"]]
    missing = runs.merge(have, how="left", indicator=True).query("_merge == 'left_only'")
    new = [{"grid": g, "config": c, "seed": s, "metric": f"same_person_{m}", "source": "all",
            "method": np.nan, "temperature": np.nan, "guidance": np.nan, "denoised": False,
            "value": reference[m], "n": reference["n"]}
           for g, c, s in missing[["grid", "config", "seed"]].itertuples(index=False)
           for m in ("ssim", "rmse")]
    return pd.concat([rows, pd.DataFrame(new, columns=FIDELITY_COLUMNS)], ignore_index=True) \
        if new else rows


def evaluate_grid(grid: str, budget: str, seeds: tuple[int, ...], configs: list[str] | None,
                  cfg: GridScoring, results_dir: Path | str | None = None,
                  runs_dir: Path | str = RUNS_DIR, workers: int = 1,
                  emotion_set: EmotionSet | None = None) -> pd.DataFrame:
    """Evaluate every trained run of ``grid`` under ``budget`` not yet in its fidelity file,
    ``workers`` at a time (one process and thread each; ``emotion_set`` in this process only);
    returns all rows. A run not trained to the end is refused (train it with
    ``python -m bplf ablate`` first). Runs in the file without the same-person reference get
    it (``with_reference``), from ``emotion_set``."""
    _, runs = grid_runs(grid, budget, seeds, configs, runs_dir)
    results_dir = Path(results_dir or RESULTS_DIR / budget)
    path = results_dir / f"{grid}-fidelity.csv"
    done = read_fidelity(budget, grid, results_dir)
    have = set(zip(done["config"], done["seed"], strict=True))
    for name, seed, train, _, out in runs:
        if (name, seed) not in have and not finished(out, train.steps):
            raise ValueError(f"{out}: run {name!r} seed {seed} of grid {grid!r} has not trained "
                             f"all {train.steps} steps; run python -m bplf ablate --grid {grid} "
                             f"--budget {budget} first")
    todo = [(name, seed, out) for name, seed, _, _, out in runs if (name, seed) not in have]
    es = emotion_set or load_emotion_set()

    def write(table: pd.DataFrame) -> None:
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL))

    completed = with_reference(done, same_person_reference(es)) if len(done) else done
    if len(completed) > len(done):
        write(completed)

    def add(name: str, seed: int, rows: list[dict]) -> None:
        new = pd.DataFrame([{"grid": grid, "config": name, "seed": seed, **r} for r in rows],
                           columns=FIDELITY_COLUMNS)
        write(pd.concat([read_fidelity(budget, grid, results_dir), new], ignore_index=True))

    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = {(name, seed): pool.submit(_evaluate_one, out, cfg, 1)
                    for name, seed, out in todo}
            for (name, seed), job in progress(jobs.items(), desc="runs"):
                add(name, seed, job.result())
    else:
        for name, seed, out in progress(todo, desc="runs"):
            add(name, seed, evaluate_run(out, es, cfg))
    return read_fidelity(budget, grid, results_dir)


def per_seed(rows: pd.DataFrame, metric: str, **where) -> pd.DataFrame:
    """The rows of one metric (where the columns in ``where`` match)."""
    keep = rows["metric"] == metric
    for column, value in where.items():
        keep &= rows[column] == value
    return rows[keep]
