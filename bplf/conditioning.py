"""The conditioning experiment (issue "expressions that read"; notebook 06): for every run of an
ablation grid, how well its samples and edits show the emotion, beside its test bpd.

Each run (its ``best.pt``) is measured on the test split:

* ``test_bpd`` per source, emotion summed out (``source="all"``: weighted by faces), and
  ``generative_accuracy``: the flow's own classifier argmax_y log p(x|y), balanced, per source;
* ``sample_accuracy`` and ``sample_fd``: the repo classifier's balanced accuracy on samples
  drawn for each emotion (chance 1/7) and their Fréchet distance to the real test faces, per
  temperature, and per guidance scale for runs trained with label dropout (a guided sample is
  not a draw from the model's density);
* ``edit_hit_rate`` at intensity 1 (each test face edited toward all 7 emotions) and the
  identity kept, ``edit_ssim`` and ``edit_rmse`` to the input, per editing method (and guidance
  for ``swap``); ``different_person_ssim``/``_rmse``: two real faces of the same emotion.

Rows are tidy, one figure each, in ``results/ablations/<budget>/<grid>-fidelity.csv``; a rerun
evaluates only the runs not in it. ``summary`` and ``verdicts`` turn them into the table and
the decisions of notebook 06, by the ablations' noise rule (``bplf.experiments.compare``).
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bplf.data import EMOTIONS, EmotionSet, load_emotion_set
from bplf.experiments import RESULTS_DIR, RUNS_DIR, compare, finished, grid_runs, verdict
from bplf.metrics.fidelity import binomial_se
from bplf.utils import atomic_write, progress

COLUMNS = ["grid", "config", "seed", "metric", "source", "method", "temperature", "guidance",
           "value", "n"]
TEMPERATURES = (0.5, 0.7, 1.0)
GUIDANCE = (1.0, 2.0, 3.0, 5.0, 8.0)
CHANCE = 1 / len(EMOTIONS)


@dataclasses.dataclass
class FidelityConfig:
    """How much of each measurement: samples per emotion and temperature, test faces edited
    (each toward all 7 emotions), train faces per emotion for the ``mean`` method's latents."""

    per_emotion: int = 300
    edit_faces: int = 200
    mean_faces: int = 200
    temperatures: tuple[float, ...] = TEMPERATURES
    guidance: tuple[float, ...] = GUIDANCE


@torch.no_grad()
def evaluate_run(run: Path | str, es: EmotionSet, cfg: FidelityConfig | None = None,
                 classifier: Path | str | None = None) -> list[dict]:
    """The rows of one run (without its grid, config and seed), on ``es``'s test split."""
    from bplf.editing import latent_means, sample_faces
    from bplf.evaluate import bpd_report
    from bplf.likelihood import dequantize
    from bplf.metrics import load_classifier
    from bplf.metrics.fidelity import _compare, _scores, edit_accuracy, identity_report
    from bplf.runs import load_checkpoint

    cfg = cfg or FidelityConfig()
    model = load_checkpoint(run, "cpu").eval()
    scales = cfg.guidance if model.guidable else (1.0,)
    judge = load_classifier(classifier, "cpu")
    test = es.select(split="test")
    train_labels = es.select(split="train").labels
    prior = np.bincount(train_labels, minlength=len(EMOTIONS)) / len(train_labels)
    rows: list[dict] = []

    def row(metric: str, value: float, n: int, source: str = "all", method: str = "",
            temperature: float = np.nan, guidance: float = np.nan) -> None:
        rows.append({"metric": metric, "source": source, "method": method,
                     "temperature": temperature, "guidance": guidance, "value": float(value),
                     "n": n})

    bits, n = 0.0, 0
    for source in sorted(set(test.source)):
        sub = test.select(source=source)
        r = bpd_report(model, sub.images, sub.labels, prior)
        row("test_bpd", r["marginal_bpd"], r["n"], source)
        row("generative_accuracy", r["generative_accuracy"]["balanced_accuracy"], r["n"], source)
        bits, n = bits + r["marginal_bpd"] * r["n"], n + r["n"]
    row("test_bpd", bits / n, n)

    ref, _ = _scores(judge, dequantize(test.images, centre=True), test.labels)
    weights = np.bincount(test.labels, minlength=len(EMOTIONS)) / len(test)
    for g in scales:
        for t in cfg.temperatures:
            images, y = sample_faces(model, cfg.per_emotion, t, seed=0, guidance=g)
            feats, acc = _scores(judge, dequantize(images, centre=True), y)
            row("sample_accuracy", acc["accuracy"], len(y), temperature=t, guidance=g)
            row("sample_fd", _compare(feats, y, ref, test.labels, weights)["fd"], len(y),
                temperature=t, guidance=g)

    faces = test.subsample(cfg.edit_faces, seed=0)
    means = latent_means(model, es, per_emotion=cfg.mean_faces)
    for method in model.edit_methods:
        for g in scales if method == "swap" else (1.0,):
            hits = edit_accuracy(model, judge, faces.images, faces.labels, means, (1.0,), method,
                                 g)[1.0]
            kept = identity_report(model, faces.images, faces.labels, means, method, 1.0, g)
            edits = len(faces) * model.config.num_classes
            row("edit_hit_rate", hits, edits, method=method, guidance=g)
            row("edit_ssim", kept["edit_ssim"], len(faces), method=method, guidance=g)
            row("edit_rmse", kept["edit_rmse"], len(faces), method=method, guidance=g)
    row("different_person_ssim", kept["different_person_ssim"], len(faces))
    row("different_person_rmse", kept["different_person_rmse"], len(faces))
    return rows


def _evaluate_one(run: Path, cfg: FidelityConfig, threads: int) -> list[dict]:
    """``evaluate_run`` in a worker process on ``threads`` CPU threads."""
    from bplf.settings import setup_cpu

    torch.set_num_threads(threads)
    setup_cpu()
    return evaluate_run(run, load_emotion_set(), cfg)


def read_fidelity(grid: str, budget: str, results_dir: Path | str | None = None) -> pd.DataFrame:
    """The fidelity rows of a grid under a budget (empty if none yet)."""
    path = Path(results_dir or RESULTS_DIR / budget) / f"{grid}-fidelity.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)


def evaluate_grid(grid: str, budget: str, seeds: tuple[int, ...] = (0, 1),
                  configs: list[str] | None = None, cfg: FidelityConfig | None = None,
                  results_dir: Path | str | None = None, runs_dir: Path | str = RUNS_DIR,
                  workers: int = 1, emotion_set: EmotionSet | None = None) -> pd.DataFrame:
    """Evaluate every trained run of ``grid`` under ``budget`` not yet in its fidelity file,
    ``workers`` at a time (one process and thread each; ``emotion_set`` in this process only);
    returns all rows. A run not trained to the end is refused (train it with
    ``python -m bplf ablate`` first)."""
    cfg = cfg or FidelityConfig()
    _, runs = grid_runs(grid, budget, seeds, configs, runs_dir)
    results_dir = Path(results_dir or RESULTS_DIR / budget)
    done = read_fidelity(grid, budget, results_dir)
    have = set(zip(done["config"], done["seed"], strict=True))
    for name, seed, train, _, out in runs:
        if (name, seed) not in have and not finished(out, train.steps):
            raise ValueError(f"{out}: run {name!r} seed {seed} of grid {grid!r} has not trained "
                             f"all {train.steps} steps; run python -m bplf ablate --grid {grid} "
                             f"--budget {budget} first")
    todo = [(name, seed, out) for name, seed, _, _, out in runs if (name, seed) not in have]

    def write(name: str, seed: int, rows: list[dict]) -> None:
        new = pd.DataFrame([{"grid": grid, "config": name, "seed": seed, **r} for r in rows],
                           columns=COLUMNS)
        table = pd.concat([read_fidelity(grid, budget, results_dir), new], ignore_index=True)
        atomic_write(results_dir / f"{grid}-fidelity.csv",
                     lambda tmp: table.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL))

    if workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = {(name, seed): pool.submit(_evaluate_one, out, cfg, 1)
                    for name, seed, out in todo}
            for (name, seed), job in progress(jobs.items(), desc="runs"):
                write(name, seed, job.result())
    else:
        es = emotion_set or load_emotion_set()
        for name, seed, out in progress(todo, desc="runs"):
            write(name, seed, evaluate_run(out, es, cfg))
    return read_fidelity(grid, budget, results_dir)


def _per_seed(rows: pd.DataFrame, metric: str, **where) -> pd.DataFrame:
    """The rows of one metric (where the columns in ``where`` match)."""
    keep = rows["metric"] == metric
    for column, value in where.items():
        keep &= rows[column] == value
    return rows[keep]


def best_setting(rows: pd.DataFrame, metric: str, by: list[str], **where) -> pd.DataFrame:
    """Per config: the setting (the columns ``by``, e.g. temperature and guidance) with the
    highest seed-mean ``metric``, and that setting's per-seed rows (columns config, seed,
    value, n and ``by``)."""
    chosen = _per_seed(rows, metric, **where)
    means = chosen.groupby(["config", *by], dropna=False)["value"].mean().reset_index()
    best = means.loc[means.groupby("config")["value"].idxmax(), ["config", *by]]
    return chosen.merge(best, on=["config", *by])[["config", "seed", "value", "n", *by]]


def kept_edits(rows: pd.DataFrame) -> pd.DataFrame:
    """The edit hit-rate rows of the settings (config, method, guidance) that keep the person:
    edited faces closer to their inputs, in seed-mean SSIM and RMSE, than two different real
    faces of the same emotion are to each other. A hit-rate bought by replacing the face does
    not count."""
    key = ["config", "method", "guidance"]
    ssim = _per_seed(rows, "edit_ssim").groupby(key)["value"].mean()
    rmse = _per_seed(rows, "edit_rmse").groupby(key)["value"].mean()
    ref = rows[rows["metric"].str.startswith("different_person")].groupby(
        ["config", "metric"])["value"].mean().unstack()
    configs = ssim.index.get_level_values("config")
    kept = ((ssim.to_numpy() > ref.loc[configs, "different_person_ssim"].to_numpy())
            & (rmse.reindex(ssim.index).to_numpy()
               < ref.loc[configs, "different_person_rmse"].to_numpy()))
    hits = _per_seed(rows, "edit_hit_rate")
    return hits.merge(ssim.index[kept].to_frame(index=False), on=key)


def _spread(values: pd.DataFrame) -> pd.DataFrame:
    return values.groupby("config")["value"].agg(["mean", "std"])


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per config (seed means, with their standard deviation): test bpd, generative accuracy on
    FER-2013, sample fidelity at its best temperature without guidance and at its best
    (temperature, guidance) with that setting's Fréchet distance, and the edit hit-rate at
    intensity 1 of its best setting that keeps the person (``kept_edits``), with that edit's
    SSIM and RMSE to the input."""
    setting = ["config", "seed", "method", "guidance"]
    bpd = _spread(_per_seed(rows, "test_bpd", source="all"))
    gen = _spread(_per_seed(rows, "generative_accuracy", source="fer2013"))
    plain = best_setting(rows[rows["guidance"] == 1.0], "sample_accuracy", ["temperature"])
    guided = best_setting(rows, "sample_accuracy", ["temperature", "guidance"])
    fd = _per_seed(rows, "sample_fd").merge(guided[["config", "seed", "temperature", "guidance"]],
                                            on=["config", "seed", "temperature", "guidance"])
    edits = best_setting(kept_edits(rows), "edit_hit_rate", ["method", "guidance"])
    ssim = _per_seed(rows, "edit_ssim").merge(edits[setting], on=setting)
    rmse = _per_seed(rows, "edit_rmse").merge(edits[setting], on=setting)
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


def rate(values: pd.DataFrame) -> tuple[float, float, int]:
    """The seed mean of a rate (a share of ``n`` samples or edits per seed), its standard
    error, and the number of seeds. The error is the seed spread's or the binomial error of all
    the samples behind the mean, whichever is larger: two seeds can agree by luck, but no mean
    of a few thousand samples is known better than the binomial error."""
    p, seeds = float(values["value"].mean()), len(values)
    binomial = binomial_se(p, values["n"].sum())
    spread = float(values["value"].std() / np.sqrt(seeds)) if seeds > 1 else 0.0
    return p, max(spread, binomial), seeds


def compare_rates(values: pd.DataFrame, a: str, b: str) -> dict:
    """``experiments.compare`` for rates (higher is better), with ``rate``'s standard errors:
    ``diff`` is b's mean minus a's (negative: ``a`` is better), so ``experiments.verdict``
    reads it as it reads bpd."""
    pa, sa, na = rate(values[values["config"] == a])
    pb, sb, nb = rate(values[values["config"] == b])
    se = float(np.hypot(sa, sb))
    enough = na > 1 and nb > 1
    return {"a": a, "b": b, "diff": pb - pa, "se": se, "seeds": (na, nb),
            "within_noise": bool(abs(pb - pa) < 2 * se) if enough else None}


VERDICT_COLUMNS = ["config", "fidelity diff", "fidelity se", "better fidelity?", "edit diff",
                   "edit se", "better edits?", "bpd diff", "bpd se", "bpd within 0.05?",
                   "goal met?"]


def verdicts(rows: pd.DataFrame, baseline: str = "top-prior") -> pd.DataFrame:
    """Every config against ``baseline`` by the noise rule (a difference beyond 2 standard
    errors; for rates, ``compare_rates``): better sample fidelity (each at its best setting),
    better edit hit-rate (its best setting that keeps the person, ``kept_edits``), and a test
    bpd no worse than 0.05 above the baseline's; and the issue's goal: fidelity and hit-rate
    margins over chance at least twice the baseline's, both better beyond noise, bpd within
    0.05."""
    fid = best_setting(rows, "sample_accuracy", ["temperature", "guidance"])
    edits = best_setting(kept_edits(rows), "edit_hit_rate", ["method", "guidance"])
    bpd = _per_seed(rows, "test_bpd", source="all")[["config", "seed", "value"]]
    mean = lambda v, c: v.loc[v["config"] == c, "value"].mean()  # noqa: E731
    out = []
    for config in dict.fromkeys(rows["config"]):
        if config == baseline:
            continue
        f, e = compare_rates(fid, config, baseline), compare_rates(edits, config, baseline)
        b = compare(bpd, config, baseline)
        goal = (mean(fid, config) - CHANCE >= 2 * (mean(fid, baseline) - CHANCE)
                and mean(edits, config) - CHANCE >= 2 * (mean(edits, baseline) - CHANCE)
                and b["diff"] <= 0.05 and verdict([f]) == verdict([e]) == "replicates")
        out.append({"config": config, "fidelity diff": -f["diff"], "fidelity se": f["se"],
                    "better fidelity?": verdict([f]), "edit diff": -e["diff"],
                    "edit se": e["se"], "better edits?": verdict([e]),
                    "bpd diff": b["diff"], "bpd se": b["se"],
                    "bpd within 0.05?": bool(b["diff"] <= 0.05), "goal met?": goal})
    return pd.DataFrame(out, columns=VERDICT_COLUMNS).set_index("config")


def above_chance(rows: pd.DataFrame, config: str = "top-prior") -> pd.DataFrame:
    """Do ``config``'s unguided samples read as their emotion above chance? Per temperature:
    the seed-mean balanced accuracy, its margin over 1/7 and the margin's standard error
    (``rate``); above chance when the margin exceeds 2 standard errors."""
    fid = _per_seed(rows, "sample_accuracy", config=config, guidance=1.0)
    out = []
    for t, v in fid.groupby("temperature"):
        p, se, seeds = rate(v)
        out.append({"temperature": t, "accuracy": p, "margin": p - CHANCE, "se": se,
                    "seeds": seeds, "above chance?": bool(p - CHANCE > 2 * se)})
    return pd.DataFrame(out).set_index("temperature")
