"""Where every figure in the prose comes from (``bplf.research.quoted.problems`` checks them).

One entry per quoted figure: the document, a snippet of its text with the figure in braces and
a function that reads the figure from a committed result file (a checkpoint's evaluation or
training log, a bench or ablation result, an executed notebook's output). A rate is returned as
a share and compared as the percentage the prose writes; "points" are returned in points.
Settings and names (15% label dropout, exercise 1.1) are listed at the end.
"""

from __future__ import annotations

import json
import re
from functools import cache

import numpy as np
import pandas as pd

from bplf.research import conditioning, experiments, noise
from bplf.research.quoted import Quote, Setting
from bplf.research.scoring import per_seed
from bplf.research.stats import compare
from bplf.settings import REPO_ROOT

# -- sources -------------------------------------------------------------------------------


@cache
def _json(path: str):
    return json.loads((REPO_ROOT / path).read_text())


def ev(model: str, *keys):
    """A figure of ``checkpoints/<model>/evaluation.json``, by keys and list indices."""
    value = _json(f"checkpoints/{model}/evaluation.json")
    for k in keys:
        value = value[k]
    return value


@cache
def _log(model: str) -> pd.DataFrame:
    path = REPO_ROOT / "checkpoints" / model / "metrics.jsonl"
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


def log(model: str, step: int, key: str) -> float:
    """``key`` of a checkpoint's training log at ``step`` (the last row that has it)."""
    rows = _log(model)
    return float(rows.loc[(rows["step"] == step) & rows[key].notna(), key].iloc[-1])


def hours(model: str) -> float:
    """Wall-clock hours of a checkpoint's training run (its last logged wall time)."""
    return float(_log(model)["wall"].max()) / 3600


def mib(path: str) -> float:
    return (REPO_ROOT / path).stat().st_size / 2**20


@cache
def _classifier_log() -> pd.DataFrame:
    path = REPO_ROOT / "checkpoints" / "emotion-cnn" / "metrics.jsonl"
    return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])


def bench(name: str, index: int, key: str) -> float:
    return float(_json(f"results/{name}.json")[index][key])


def bench_ratio(name: str, key: str = "train_images_per_s") -> float:
    """bf16 over float32 (the mean of each precision's runs) in a bench file."""
    rows = pd.DataFrame(_json(f"results/{name}.json"))
    means = rows.groupby("amp")[key].mean()
    return float(means[True] / means[False])


@cache
def _outputs(notebook: str) -> str:
    cells = _json(f"notebooks/{notebook}.ipynb")["cells"]
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


def output(notebook: str, pattern: str) -> float:
    """The number in group 1 of ``pattern`` in a committed notebook's printed output."""
    found = re.search(pattern, _outputs(notebook))
    if found is None:
        raise ValueError(f"notebooks/{notebook}.ipynb: no output matches {pattern!r}")
    return float(found.group(1))


@cache
def _results(grid: str, budget: str) -> pd.DataFrame:
    return experiments.read_results(grid, budget)


def final(budget: str, grid: str, config: str, stat: str = "final_bpd") -> float:
    """A config's final val bpd (seed mean; ``stat="spread"``: sd) in an ablation grid."""
    return float(experiments.summary(_results(grid, budget)).loc[config, stat])


def diff(budget: str, grid: str, a: str, b: str, key: str = "diff") -> float:
    """``stats.compare`` of two configs' final val bpd: a's mean minus b's, or its ``se``."""
    return float(compare(experiments.final_bpd(_results(grid, budget)), a, b)[key])


def steps_ratio(budget: str, config: str, target: float = 5.9) -> float:
    table = experiments.steps_table(_results("pca", budget), (target,), "none")
    return float(table.loc[config, f"ratio ({target})"])


def params_ratio(budget: str, grid: str, a: str, b: str) -> float:
    table = experiments.summary(_results(grid, budget))
    return float(table.loc[a, "params"] / table.loc[b, "params"])


@cache
def _gpu_fidelity() -> pd.DataFrame:
    return experiments.read_fidelity("gpu")


def gpu(metric: str, config: str, generator: str = "model") -> float:
    """``sample_<metric>`` at T 0.7 of a gpu-budget run's samples (``generator="floor"``: of its
    untrained floor), ``results/ablations/gpu/fidelity``; ``config`` is "grid/config"."""
    grid, name = config.split("/")
    hit = per_seed(_gpu_fidelity(), f"sample_{metric}", grid=grid, config=name,
                   generator=generator, temperature=0.7)
    return float(hit["value"].iloc[0])


#: the gpu-budget runs whose fidelity was measured, but normflows' Glow (quoted on its own)
GPU_RUNS = ("pca/none", "pca/patch", "pca/patch-trainable", "conditioner/depth4-3x3",
            "branches/conv", "baselines/glow", "baselines/realnvp")


@cache
def _conditioning() -> pd.DataFrame:
    return experiments.read_fidelity("cpu-long", "conditioning")


@cache
def _conditioning_tables() -> dict[str, pd.DataFrame]:
    rows = _conditioning()
    return {"summary": conditioning.summary(rows), "verdicts": conditioning.verdicts(rows),
            "chance": conditioning.above_chance(rows)}


def cond(config: str, column: str) -> float:
    return float(_conditioning_tables()["summary"].loc[config, column])


def cond_verdict(config: str, column: str) -> float:
    return float(_conditioning_tables()["verdicts"].loc[config, column])


def above(temperature: float, column: str) -> float:
    return float(_conditioning_tables()["chance"].loc[temperature, column])


def cond_mean(metric: str, **where) -> float:
    """The mean over seeds (and runs) of a conditioning-grid figure where ``where`` matches:
    ``cond_sample("fd", ..., ..., ...)``, a reference such as
    ``cond_mean("different_person_ssim")``."""
    return float(per_seed(_conditioning(), metric, **where)["value"].mean())


def cond_sample(metric: str, config: str, temperature: float, guidance: float) -> float:
    """``sample_<metric>`` of a conditioning-grid config at one setting, seed mean."""
    return cond_mean(f"sample_{metric}", config=config, temperature=temperature,
                     guidance=guidance)


@cache
def _noise_tables() -> dict[str, pd.DataFrame]:
    rows = experiments.read_fidelity("cpu-long", "noise")
    return {"summary": noise.summary(rows), "verdicts": noise.verdicts(rows)}


def noise_figure(variant: str, column: str) -> float:
    """A seed mean of the noise grid's summary (``bplf.research.noise.summary``)."""
    return float(_noise_tables()["summary"].loc[variant, column])


def noise_verdict(variant: str, column: str) -> float:
    return float(_noise_tables()["verdicts"].loc[variant, column])


def per_emotion_recall(emotion: int) -> float:
    """The classifier's test recall of one emotion (its confusion matrix's row)."""
    row = np.asarray(ev("emotion-cnn", "confusion")[emotion])
    return float(row[emotion] / row.sum())


def rec(model: str, kind: str, key: str) -> float:
    """A figure of a model's recommended sample setting or edit (``kind``)."""
    return float(ev(model, "recommended", kind, key))


def target(name: str, column: str = "sampler") -> float:
    """A row of the sampler's targets against part 1's model (``noise.targets``)."""
    return float(noise.targets(ev(SAMPLER), ev(LIKELIHOOD)).loc[name, column])



SAMPLER, LIKELIHOOD, PREVIOUS = "bplf-emotion48-sampler", "bplf-emotion48", "bplf-emotion48-v1"
R, T = "README.md", "docs/teaching.md"
Z = "checkpoints/bplf-emotion48-sampler/README.md"
S, V = "checkpoints/bplf-emotion48/README.md", "checkpoints/bplf-emotion48-v1/README.md"
C, A = "checkpoints/emotion-cnn/README.md", "results/ablations/README.md"
NB = {n: f"notebooks/{name}.ipynb" for n, name in enumerate(
    ["", "01_build_emotion_set", "02_change_of_variables", "03_coupling_and_pca_layers",
     "04_train_bplf", "05_samples_and_expressions", "06_ablations"]) if name}


def _bpd(model: str, source: str, key: str = "marginal_bpd"):
    return lambda: ev(model, "sources", source, key)


QUOTES: list[Quote] = [
    # README: the build and the layers
    Quote(R, "estimate is {1.0085} +-",
          lambda: output("03_coupling_and_pca_layers", r"R\^16: ([\d.]+)")),
    Quote(R, "1.0085 +- {0.0068}",
          lambda: output("03_coupling_and_pca_layers", r"R\^16: [\d.]+ \+- ([\d.]+)")),
    # README: bf16 and channels-last
    Quote(R, "**slower**, {0.68}x", lambda: bench_ratio("bench_cpu_bf16")),
    Quote(R, "val bpd {5.782} +- 0.003", lambda: final("cpu", "precision", "float32")),
    Quote(R, "5.782 +- {0.003} in float32",
          lambda: final("cpu", "precision", "float32", "spread")),
    Quote(R, "and {5.795} +- 0.019 under", lambda: final("cpu", "precision", "bf16")),
    Quote(R, "5.795 +- {0.019} under", lambda: final("cpu", "precision", "bf16", "spread")),
    Quote(R, "a difference of {0.013}", lambda: diff("cpu", "precision", "bf16", "float32")),
    Quote(R, "0.013, standard error {0.014}",
          lambda: diff("cpu", "precision", "bf16", "float32", "se")),
    Quote(R, "trained at {26.4} float32", lambda: bench("bench_cpu_avx2_bf16", 0,
                                                         "train_images_per_s")),
    Quote(R, "and {2.4} under", lambda: bench("bench_cpu_avx2_bf16", 1, "train_images_per_s")),
    Quote(R, "**{0.09}x**", lambda: bench_ratio("bench_cpu_avx2_bf16")),
    # README: training
    Quote(R, "with 2 threads ({1.2} hours)", lambda: hours(LIKELIHOOD)),
    Quote(R, "**FER-2013 {5.314}**", _bpd(LIKELIHOOD, "fer2013")),
    Quote(R, "CK+ {4.407}", _bpd(LIKELIHOOD, "ckplus")),
    Quote(R, "JAFFE {4.768}", _bpd(LIKELIHOOD, "jaffe")),
    Quote(R, "all {5.272}", lambda: ev(LIKELIHOOD, "overall_marginal_bpd")),
    Quote(R, "Gaussian scores {6.67}",
          lambda: output("03_coupling_and_pca_layers", r"N\(0, I\)\): ([\d.]+) bits/dim")),
    Quote(R, "one CPU thread ({2.8} hours)", lambda: hours(PREVIOUS)),
    Quote(R, "FER-2013 {5.324}, CK+", _bpd(PREVIOUS, "fer2013")),
    Quote(R, "CK+ {4.425}", _bpd(PREVIOUS, "ckplus")),
    Quote(R, "JAFFE {4.780}", _bpd(PREVIOUS, "jaffe")),
    Quote(R, "all {5.283}", lambda: ev(PREVIOUS, "overall_marginal_bpd")),
    Quote(R, "abs error {3.4e-4}", lambda: ev(LIKELIHOOD, "round_trip_max_abs_error")),
    Quote(R, "the first model {5.1e-4}", lambda: ev(PREVIOUS, "round_trip_max_abs_error")),
    Quote(R, "the sampler {1.7e-5}", lambda: ev(SAMPLER, "round_trip_max_abs_error")),
    Quote(R, "CPU ({2.4} hours)", lambda: hours(SAMPLER)),
    Quote(R, "worse: FER-2013 {5.613}", _bpd(SAMPLER, "fer2013")),
    Quote(R, "more often ({26.3%} against", lambda: target("unguided joint rate, T 0.7")),
    Quote(R, "against {20.5%}), and", lambda: target("unguided joint rate, T 0.7", "part 1")),
    Quote(R, "target in {47.1%} of edits", lambda: rec(SAMPLER, "edits", "joint_rate")),
    Quote(R, "FER-2013 {63.4%}", lambda: ev("emotion-cnn", "sources", "fer2013", "accuracy")),
    Quote(R, "CK+ {92.5%}", lambda: ev("emotion-cnn", "sources", "ckplus", "accuracy")),
    Quote(R, "JAFFE {61.0%}", lambda: ev("emotion-cnn", "sources", "jaffe", "accuracy")),
    # README: the ablations (gpu budget unless said)
    Quote(R, "({5.778} +- 0.027) beats", lambda: final("gpu", "conditioner", "depth3-3x3")),
    Quote(R, "(5.778 +- {0.027}) beats",
          lambda: final("gpu", "conditioner", "depth3-3x3", "spread")),
    Quote(R, "depth 1 ({6.163})", lambda: final("gpu", "conditioner", "depth1-3x3")),
    Quote(R, "depth 2 ({5.822})", lambda: final("gpu", "conditioner", "depth2-3x3")),
    Quote(R, "3 x 1x1 ({6.032})", lambda: final("gpu", "conditioner", "depth3-1x1")),
    Quote(R, "3 x 5x5 ({5.893})", lambda: final("gpu", "conditioner", "depth3-5x5")),
    Quote(R, "4 x 3x3 ({5.805};", lambda: final("gpu", "conditioner", "depth4-3x3")),
    Quote(R, "difference {0.027}, standard error 0.022",
          lambda: diff("gpu", "conditioner", "depth4-3x3", "depth3-3x3")),
    Quote(R, "0.027, standard error {0.022}",
          lambda: diff("gpu", "conditioner", "depth4-3x3", "depth3-3x3", "se")),
    Quote(R, "in {0.84}x the steps", lambda: steps_ratio("gpu", "patch")),
    Quote(R, "(CPU budget: {0.71}x)", lambda: steps_ratio("cpu", "patch")),
    Quote(R, "at {6.44}-6.49", lambda: final("gpu", "pca", "global-trainable")),
    Quote(R, "at 6.44-{6.49}", lambda: final("gpu", "pca", "global")),
    Quote(R, "ends {0.035} lower", lambda: -diff("gpu", "pca", "patch", "none")),
    Quote(R, "{0.08}, beyond noise)", lambda: -diff("cpu", "pca", "patch", "none")),
    Quote(R, "({5.767}) ties", lambda: final("gpu", "branches", "conv")),
    Quote(R, "ties both ({5.778})", lambda: final("gpu", "branches", "both")),
    Quote(R, "far worse ({6.449})", lambda: final("gpu", "branches", "linear")),
    Quote(R, "ahead of glow ({5.838})", lambda: final("gpu", "baselines", "glow")),
    Quote(R, "glow ({5.818}) and", lambda: final("gpu", "baselines", "glow-normflows")),
    Quote(R, "realnvp ({6.108})", lambda: final("gpu", "baselines", "realnvp")),
    Quote(R, "with {3.5}x glow's", lambda: params_ratio("gpu", "baselines", "bplf", "glow")),
    Quote(R, "and {0.83}x its", lambda: bench("bench_h100_b256", 0, "train_images_per_s")
          / bench("bench_h100_b256", 1, "train_images_per_s")),
    Quote(R, "Glow ({0.020} bpd", lambda: -diff("gpu", "baselines", "glow-normflows", "glow")),
    Quote(R, "Fréchet distance {9.1}-11.6", lambda: min(gpu("fd", r) for r in GPU_RUNS)),
    Quote(R, "Fréchet distance 9.1-{11.6}", lambda: max(gpu("fd", r) for r in GPU_RUNS)),
    Quote(R, "floors {11.4}-22.9", lambda: min(gpu("fd", r, "floor") for r in GPU_RUNS)),
    Quote(R, "floors 11.4-{22.9}", lambda: max(gpu("fd", r, "floor") for r in GPU_RUNS)),
    Quote(R, "are not ({14.3}, floor 13.5)", lambda: gpu("fd", "baselines/glow-normflows")),
    Quote(R, "floor {13.5})", lambda: gpu("fd", "baselines/glow-normflows", "floor")),
    Quote(R, "chance (13-{15%})", lambda: max(gpu("accuracy", r) for r in GPU_RUNS)),
    # README: the conditioning grid
    Quote(R, "chance ({17.5%} at T=0.7", lambda: above(0.7, "accuracy")),
    Quote(R, "chance {14.3%}", lambda: conditioning.CHANCE),
    Quote(R, "standard error {0.6})", lambda: 100 * above(0.7, "se")),
    Quote(R, "(+{6.8} points", lambda: 100 * cond_verdict("label-dropout", "fidelity diff")),
    Quote(R, "standard error {2.0}) and",
          lambda: 100 * cond_verdict("label-dropout", "fidelity se")),
    Quote(R, "edits (+{2.5}, 1.0)", lambda: 100 * cond_verdict("label-dropout", "edit diff")),
    Quote(R, "edits (+2.5, {1.0})", lambda: 100 * cond_verdict("label-dropout", "edit se")),
    Quote(R, "guidance ({5.87} to 6.00", lambda: cond_sample("fd", "label-dropout", 1.0, 1.0)),
    Quote(R, "5.87 to {6.00} at", lambda: cond_sample("fd", "label-dropout", 1.0, 8.0)),
    # the sampler's README
    Quote(Z, "float32. {2.4} hours of training", lambda: hours(SAMPLER)),
    Quote(Z, "went from {5.597} at step 500", lambda: log(SAMPLER, 500, "val_bpd")),
    Quote(Z, "to {5.584} at step 10,000", lambda: log(SAMPLER, 10000, "val_bpd")),
    Quote(Z, "the last one, {4.9} MiB", lambda: mib(f"checkpoints/{SAMPLER}/model.pt")),
    Quote(Z, "Fréchet distance, {1.57} against", lambda: rec(SAMPLER, "samples", "fd")),
    Quote(Z, "1.57 against {2.26}, and", lambda: rec(LIKELIHOOD, "samples", "fd")),
    Quote(Z, "higher recall, {0.57}\nagainst", lambda: rec(SAMPLER, "samples", "recall")),
    Quote(Z, "against {0.49}), and", lambda: rec(LIKELIHOOD, "samples", "recall")),
    Quote(Z, "(SSIM {0.72} to its input", lambda: rec(SAMPLER, "edits", "ssim")),
    Quote(Z, "same-person reference {0.62})",
          lambda: ev(SAMPLER, "reference", "same_person", "ssim")),
    Quote(Z, "noisy ones: {0.30} bits", lambda: target("clean FER-2013 test bpd", "sampler")
          - target("clean FER-2013 test bpd", "part 1")),
    Quote(Z, "abs error {1.7e-5}", lambda: ev(SAMPLER, "round_trip_max_abs_error")),
    # the shipped model's README
    Quote(S, "trained at {0.09}x", lambda: bench_ratio("bench_cpu_avx2_bf16")),
    Quote(S, "{1.23} hours of training", lambda: hours(LIKELIHOOD)),
    Quote(S, "went from {5.318} at step 400", lambda: log(LIKELIHOOD, 400, "val_bpd")),
    Quote(S, "to {5.274} at step 3,000", lambda: log(LIKELIHOOD, 3000, "val_bpd")),
    Quote(S, "the last one, {4.9} MiB", lambda: mib(f"checkpoints/{LIKELIHOOD}/model.pt")),
    Quote(S, "abs error {3.4e-4}", lambda: ev(LIKELIHOOD, "round_trip_max_abs_error")),
    # the previous model's README
    Quote(V, "{2.8} hours of training", lambda: hours(PREVIOUS)),
    Quote(V, "{6.08} at step 500", lambda: log(PREVIOUS, 500, "val_bpd")),
    Quote(V, "to {5.285} at step 15,000", lambda: log(PREVIOUS, 15000, "val_bpd")),
    Quote(V, "checkpoint, {4.3} MiB", lambda: mib(f"checkpoints/{PREVIOUS}/model.pt")),
    Quote(V, "**{5.324}** (5.3245)", _bpd(PREVIOUS, "fer2013")),
    Quote(V, "({5.3245}) | 5.324", _bpd(PREVIOUS, "fer2013")),
    Quote(V, "(5.3245) | {5.324} |", _bpd(PREVIOUS, "fer2013", "conditional_bpd")),
    Quote(V, "| {4.425} | 4.424", _bpd(PREVIOUS, "ckplus")),
    Quote(V, "| 4.425 | {4.424}", _bpd(PREVIOUS, "ckplus", "conditional_bpd")),
    Quote(V, "| {4.780} | 4.780", _bpd(PREVIOUS, "jaffe")),
    Quote(V, "| 4.780 | {4.780} |", _bpd(PREVIOUS, "jaffe", "conditional_bpd")),
    Quote(V, "| 3,760 | {5.283} |", lambda: ev(PREVIOUS, "overall_marginal_bpd")),
    Quote(V, "Gaussian scores {6.67}",
          lambda: output("03_coupling_and_pca_layers", r"N\(0, I\)\): ([\d.]+) bits/dim")),
    Quote(V, "error {5.1e-4}", lambda: ev(PREVIOUS, "round_trip_max_abs_error")),
    Quote(V, "is {3.8}x below", lambda: (1 / 512) / ev(PREVIOUS, "round_trip_max_abs_error")),
    # the classifier's README
    Quote(C, "(epoch 28, {65.0%}", lambda: float(_classifier_log()["val_acc"].max())),
    Quote(C, "| 3,572 | {63.4%} |", lambda: ev("emotion-cnn", "sources", "fer2013", "accuracy")),
    Quote(C, "lands at {63.4%}", lambda: ev("emotion-cnn", "sources", "fer2013", "accuracy")),
    Quote(C, "| 147 | {92.5%} |", lambda: ev("emotion-cnn", "sources", "ckplus", "accuracy")),
    Quote(C, "| 41 | {61.0%} |", lambda: ev("emotion-cnn", "sources", "jaffe", "accuracy")),
    Quote(C, "| 3,760 | {64.5%} |", lambda: ev("emotion-cnn", "accuracy")),
    *[Quote(C, f"{name} {{{pct}}}", lambda e=e: per_emotion_recall(e))
      for e, (name, pct) in enumerate([("angry", "56%"), ("disgust", "46%"), ("fear", "36%"),
                                       ("happy", "90%"), ("sad", "55%"), ("surprise", "74%"),
                                       ("neutral", "64%")])],
    # the ablations' README
    Quote(A, "{5.832} +- 0.009", lambda: final("cpu", "baselines", "bplf-glow-size")),
    Quote(A, "5.832 +- {0.009}",
          lambda: final("cpu", "baselines", "bplf-glow-size", "spread")),
    Quote(A, "{5.866} +- 0.020", lambda: final("cpu", "baselines", "glow")),
    Quote(A, "5.866 +- {0.020}", lambda: final("cpu", "baselines", "glow", "spread")),
    Quote(A, "{5.753} +-", lambda: final("cpu", "baselines", "bplf")),
    Quote(A, "{0.043}: at equal", lambda: final("cpu", "baselines", "bplf", "spread")),
    Quote(A, "by {0.034} (standard", lambda: -diff("cpu", "baselines", "bplf-glow-size", "glow")),
    Quote(A, "0.034 (standard error {0.013})",
          lambda: diff("cpu", "baselines", "bplf-glow-size", "glow", "se")),
    Quote(A, "float32 {5.782}", lambda: final("cpu", "precision", "float32")),
    Quote(A, "5.782 +- {0.003}", lambda: final("cpu", "precision", "float32", "spread")),
    Quote(A, "bf16 {5.795}", lambda: final("cpu", "precision", "bf16")),
    Quote(A, "5.795 +- {0.019}", lambda: final("cpu", "precision", "bf16", "spread")),
    Quote(A, "difference of {0.013}", lambda: diff("cpu", "precision", "bf16", "float32")),
    Quote(A, "standard error {0.014})",
          lambda: diff("cpu", "precision", "bf16", "float32", "se")),
    Quote(A, "SSIM {0.617}", lambda: ev(LIKELIHOOD, "reference", "same_person", "ssim")),
    Quote(A, "chance: {17.5%}", lambda: above(0.7, "accuracy")),
    Quote(A, "and {16.5%} at", lambda: above(1.0, "accuracy")),
    Quote(A, "(margins {3.2} and", lambda: 100 * above(0.7, "margin")),
    Quote(A, "and {2.3} points", lambda: 100 * above(1.0, "margin")),
    Quote(A, "standard errors {0.6};", lambda: 100 * max(above(0.7, "se"), above(1.0, "se"))),
    Quote(A, "T=0.5, {15.2%}", lambda: above(0.5, "accuracy")),
    Quote(A, "(samples {24.3%}", lambda: cond("label-dropout", "best fidelity")),
    Quote(A, "against {17.5%} at guidance", lambda: cond("top-prior", "best fidelity")),
    Quote(A, "the person {18.2%}", lambda: cond("label-dropout", "edit hit-rate")),
    Quote(A, "18.2% against {15.7%}", lambda: cond("top-prior", "edit hit-rate")),
    Quote(A, "samples at T {0.85} with", lambda: ev(LIKELIHOOD, "recommended", "samples",
                                                   "temperature")),
    Quote(A, "at\nintensity {1.5}) and", lambda: ev(LIKELIHOOD, "recommended", "edits",
                                                    "intensity")),
    # the notebooks' markdown
    Quote(NB[1], "the set ({97%} of the faces)", lambda: output(
        "01_build_emotion_set", r"fer2013\s+(\d+)") / output(
        "01_build_emotion_set", r"EmotionSet\((\d+) faces")),
    Quote(NB[3], "input off by {0.22}",
          lambda: output("03_coupling_and_pca_layers", r"local round trip ([\d.]+)")),
    Quote(NB[3], "about {3.5} times Glow", lambda: bench("bench_cpu", 0, "params")
          / bench("bench_cpu", 1, "params")),
    Quote(NB[4], "scores about {6.7} on",
          lambda: output("03_coupling_and_pca_layers", r"N\(0, I\)\): ([\d.]+) bits/dim")),
    Quote(NB[5], "1/7 = {14.3%}", lambda: conditioning.CHANCE),
    # notebook 06: the budgets and the gpu/cpu grids
    Quote(NB[6], "preset has {1.1}M", lambda: bench("bench_cpu", 0, "params") / 1e6),
    Quote(NB[6], "stalls near {6.49} bpd", lambda: final("gpu", "pca", "global")),
    Quote(NB[6], "preset has {3.5}x the", lambda: params_ratio("gpu", "baselines", "bplf", "glow")),
    Quote(NB[6], "by {0.034} bpd (standard",
          lambda: -diff("cpu", "baselines", "bplf-glow-size", "glow")),
    Quote(NB[6], "(standard error {0.013}), and",
          lambda: diff("cpu", "baselines", "bplf-glow-size", "glow", "se")),
    Quote(NB[6], "another {0.079} lower",
          lambda: -diff("cpu", "baselines", "bplf", "bplf-glow-size")),
    Quote(NB[6], "BPLF's {0.113} lead", lambda: -diff("cpu", "baselines", "bplf", "glow")),
    Quote(NB[6], "its {2.3}x more",
          lambda: params_ratio("cpu", "baselines", "bplf", "bplf-glow-size")),
    Quote(NB[6], "(chance {14.3%})", lambda: conditioning.CHANCE),
    Quote(NB[6], "(FD {9.1}-11.6", lambda: min(gpu("fd", r) for r in GPU_RUNS)),
    Quote(NB[6], "(FD 9.1-{11.6}", lambda: max(gpu("fd", r) for r in GPU_RUNS)),
    Quote(NB[6], "against {11.4}-22.9", lambda: min(gpu("fd", r, "floor") for r in GPU_RUNS)),
    Quote(NB[6], "against 11.4-{22.9}", lambda: max(gpu("fd", r, "floor") for r in GPU_RUNS)),
    Quote(NB[6], "floor's ({14.3} against", lambda: gpu("fd", "baselines/glow-normflows")),
    Quote(NB[6], "14.3 against {13.5})", lambda: gpu("fd", "baselines/glow-normflows", "floor")),
    Quote(NB[6], "inside ({10.0} against", lambda: gpu("fd", "baselines/glow")),
    Quote(NB[6], "10.0 against {14.5})", lambda: gpu("fd", "baselines/glow", "floor")),
    # notebook 06, section 7: the conditioning grid
    Quote(NB[6], "log2 7 = {2.8}", lambda: np.log2(7)),
    Quote(NB[6], "expressions ({0.617}",
          lambda: ev(LIKELIHOOD, "reference", "same_person", "ssim")),
    Quote(NB[6], "barely:\n{17.5%}", lambda: above(0.7, "accuracy")),
    Quote(NB[6], "({3.2} points over chance", lambda: 100 * above(0.7, "margin")),
    Quote(NB[6], "standard error {0.6}; at", lambda: 100 * above(0.7, "se")),
    Quote(NB[6], "({18.9%}), label", lambda: cond("split-priors", "best fidelity")),
    Quote(NB[6], "couplings ({17.9%})", lambda: cond("couplings", "best fidelity")),
    Quote(NB[6], "of them ({17.7%})", lambda: cond("class-loss", "best fidelity")),
    Quote(NB[6], "(15-{16%})", lambda: max(cond(c, "edit hit-rate") for c in (
        "top-prior", "split-priors", "couplings", "class-loss"))),
    Quote(NB[6], "(within {0.003};", lambda: max(abs(cond_verdict(c, "bpd diff")) for c in (
        "split-priors", "couplings", "class-loss"))),
    Quote(NB[6], "spread is {0.005}-0.06", lambda: min(cond(c, "bpd sd") for c in (
        "top-prior", "split-priors", "couplings", "class-loss"))),
    Quote(NB[6], "spread is 0.005-{0.06}", lambda: max(cond(c, "bpd sd") for c in (
        "top-prior", "split-priors", "couplings", "class-loss"))),
    Quote(NB[6], "from {32%} to 28", lambda: cond("top-prior", "generative acc (FER)")),
    Quote(NB[6], "to 28-{29%}", lambda: max(cond(c, "generative acc (FER)") for c in (
        "couplings", "class-loss"))),
    Quote(NB[6], "guidance 1 ({17.4%})", lambda: cond("label-dropout", "fidelity, guidance 1")),
    Quote(NB[6], "{17.1%} to 18.3", lambda: cond_sample("accuracy", "label-dropout", 1.0, 1.0)),
    Quote(NB[6], "to {18.3}, 19.5",
          lambda: 100 * cond_sample("accuracy", "label-dropout", 1.0, 2.0)),
    Quote(NB[6], "18.3, {19.5}, 22.2",
          lambda: 100 * cond_sample("accuracy", "label-dropout", 1.0, 3.0)),
    Quote(NB[6], "19.5, {22.2} and",
          lambda: 100 * cond_sample("accuracy", "label-dropout", 1.0, 5.0)),
    Quote(NB[6], "22.2 and {24.3%} at scales",
          lambda: cond_sample("accuracy", "label-dropout", 1.0, 8.0)),
    Quote(NB[6], "flat ({5.87} to", lambda: cond_sample("fd", "label-dropout", 1.0, 1.0)),
    Quote(NB[6], "5.87 to {6.00};", lambda: cond_sample("fd", "label-dropout", 1.0, 8.0)),
    Quote(NB[6], "falls from {8.1} to", lambda: cond_sample("fd", "label-dropout", 0.7, 1.0)),
    Quote(NB[6], "8.1 to {6.8})", lambda: cond_sample("fd", "label-dropout", 0.7, 8.0)),
    Quote(NB[6], "reach {18.2%} at scale 8", lambda: cond("label-dropout", "edit hit-rate")),
    Quote(NB[6], "(top prior: {15.7%})", lambda: cond("top-prior", "edit hit-rate")),
    Quote(NB[6], "with SSIM {0.71}", lambda: cond("label-dropout", "edit SSIM")),
    Quote(NB[6], "against {0.62} and 37", lambda: ev(LIKELIHOOD, "reference", "same_person",
                                                     "ssim")),
    Quote(NB[6], "person ({0.08} and 103", lambda: cond_mean("different_person_ssim")),
    Quote(NB[6], "(-{0.011}, SE", lambda: -cond_verdict("label-dropout", "bpd diff")),
    Quote(NB[6], "-0.011, SE {0.04})", lambda: cond_verdict("label-dropout", "bpd se")),
    Quote(NB[6], "(best {20.9%} +-", lambda: cond("all", "best fidelity")),
    Quote(NB[6], "20.9% +- {7.2},", lambda: 100 * cond("all", "fidelity sd")),
    Quote(NB[6], "chance (6-{12%})", lambda: max(cond_sample("accuracy", "all", t, 8.0)
                                               for t in conditioning.TEMPERATURES)),
    Quote(NB[6], "(SSIM {0.45} at scale 2",
          lambda: cond_mean("edit_ssim", config="all", method="swap", guidance=2.0)),
    Quote(NB[6], "scale 2, {0.22} at",
          lambda: cond_mean("edit_ssim", config="all", method="swap", guidance=3.0)),
    Quote(NB[6], "method's ({16.4%}", lambda: cond("all", "edit hit-rate")),
    Quote(NB[6], "{0.7} points over the top prior",
          lambda: 100 * cond_verdict("all", "edit diff")),
    # notebook 06, section 9: the verdicts
    Quote(NB[6], "(GPU: by {0.38}, 0.04",
          lambda: diff("gpu", "conditioner", "depth1-3x3", "depth3-3x3")),
    Quote(NB[6], "by 0.38, {0.04} and",
          lambda: diff("gpu", "conditioner", "depth2-3x3", "depth3-3x3")),
    Quote(NB[6], "0.04 and {0.25} bpd",
          lambda: diff("gpu", "conditioner", "depth3-1x1", "depth3-3x3")),
    Quote(NB[6], "on the GPU ({0.12}, with",
          lambda: diff("gpu", "conditioner", "depth3-5x5", "depth3-3x3")),
    Quote(NB[6], "with {2.7}x the", lambda: params_ratio("gpu", "conditioner", "depth3-5x5",
                                                         "depth3-3x3")),
    Quote(NB[6], "(GPU {0.027} bpd", lambda: diff("gpu", "conditioner", "depth4-3x3",
                                                  "depth3-3x3")),
    Quote(NB[6], "bpd, SE {0.022}; CPU", lambda: diff("gpu", "conditioner", "depth4-3x3",
                                                      "depth3-3x3", "se")),
    Quote(NB[6], "CPU {0.055}, SE", lambda: diff("cpu", "conditioner", "depth4-3x3",
                                                 "depth3-3x3")),
    Quote(NB[6], "0.055, SE {0.030})", lambda: diff("cpu", "conditioner", "depth4-3x3",
                                                    "depth3-3x3", "se")),
    Quote(NB[6], "in {0.84}x the steps", lambda: steps_ratio("gpu", "patch")),
    Quote(NB[6], "and {0.71}x on the CPU", lambda: steps_ratio("cpu", "patch")),
    Quote(NB[6], "to about {6.0}, late", lambda: final("gpu", "pca", "zca-trainable")),
    Quote(NB[6], "{6.44}-6.49 bpd.", lambda: final("gpu", "pca", "global-trainable")),
    Quote(NB[6], "6.44-{6.49} bpd.", lambda: final("gpu", "pca", "global")),
    Quote(NB[6], "ends {0.08} bpd lower", lambda: -diff("cpu", "pca", "patch", "none")),
    Quote(NB[6], "and {0.035} lower", lambda: -diff("gpu", "pca", "patch", "none")),
    Quote(NB[6], "(GPU: {0.011} bpd lower", lambda: -diff("gpu", "branches", "conv", "both")),
    Quote(NB[6], "lower, SE {0.021};", lambda: diff("gpu", "branches", "conv", "both", "se")),
    Quote(NB[6], "CPU: {0.006} higher", lambda: diff("cpu", "branches", "conv", "both")),
    Quote(NB[6], "higher, SE {0.029})", lambda: diff("cpu", "branches", "conv", "both", "se")),
    Quote(NB[6], "far worse ({0.64}-0.67", lambda: diff("cpu", "branches", "linear", "both")),
    Quote(NB[6], "far worse (0.64-{0.67}", lambda: diff("gpu", "branches", "linear", "both")),
    Quote(NB[6], "(by {0.060} bpd on the GPU", lambda: -diff("gpu", "baselines", "bplf", "glow")),
    Quote(NB[6], "{0.113} on the CPU)", lambda: -diff("cpu", "baselines", "bplf", "glow")),
    Quote(NB[6], "({0.33}, 0.26)", lambda: -diff("gpu", "baselines", "bplf", "realnvp")),
    Quote(NB[6], "(0.33, {0.26})", lambda: -diff("cpu", "baselines", "bplf", "realnvp")),
    Quote(NB[6], "Glow ({0.040}) beyond", lambda: -diff("gpu", "baselines", "bplf",
                                                        "glow-normflows")),
    Quote(NB[6], "with {3.5}x the parameters of",
          lambda: params_ratio("gpu", "baselines", "bplf", "glow")),
    Quote(NB[6], "trains at {0.83}x glow", lambda: bench("bench_h100_b256", 0,
                                                         "train_images_per_s")
          / bench("bench_h100_b256", 1, "train_images_per_s")),
    Quote(NB[6], "same size ({0.020} bpd", lambda: -diff("gpu", "baselines", "glow-normflows",
                                                         "glow")),
    Quote(NB[6], "{10.0} vs 14.3 at", lambda: gpu("fd", "baselines/glow")),
    Quote(NB[6], "10.0 vs {14.3} at", lambda: gpu("fd", "baselines/glow-normflows")),
    Quote(NB[6], "(within {3%})", lambda: abs(params_ratio("cpu", "baselines", "bplf-glow-size",
                                                          "glow") - 1)),
    Quote(NB[6], "by {0.034} bpd (SE", lambda: -diff("cpu", "baselines", "bplf-glow-size",
                                                     "glow")),
    Quote(NB[6], "bpd (SE {0.013})", lambda: diff("cpu", "baselines", "bplf-glow-size", "glow",
                                                  "se")),
    Quote(NB[6], "by {0.18}, beyond", lambda: -diff("cpu", "baselines", "bplf-glow-size",
                                                    "realnvp")),
    Quote(NB[6], "preset's {0.113} lead", lambda: -diff("cpu", "baselines", "bplf", "glow")),
    Quote(NB[6], "from {17.5%} to 24.3%", lambda: cond("top-prior", "best fidelity")),
    Quote(NB[6], "17.5% to {24.3%}", lambda: cond("label-dropout", "best fidelity")),
    Quote(NB[6], "from {15.7%} to 18.2%", lambda: cond("top-prior", "edit hit-rate")),
    Quote(NB[6], "15.7% to {18.2%}", lambda: cond("label-dropout", "edit hit-rate")),
    Quote(NB[6], "are {0.7} points up", lambda: 100 * cond_verdict("all", "edit diff")),
    # notebook 06, section 8: the noise grid
    Quote(NB[6], 'often (face rate {44.5%}', lambda: noise_figure("noise-0.025", "face rate")),
    Quote(NB[6], 'at std 0.025 and {48.9%}', lambda: noise_figure("noise-0.05", "face rate")),
    Quote(NB[6], 't 0.05, against\n  {36.5%}', lambda: noise_figure("today", "face rate")),
    Quote(NB[6], "ise of today's\n  ({9.0%}", lambda: noise_figure("today", "joint rate")),
    Quote(NB[6], 'réchet\n  distance {11.56}', lambda: noise_figure("noise-0.05", "unguided FD")),
    Quote(NB[6], '6 at 0.05 against {8.08}', lambda: noise_figure("today", "unguided FD")),
    Quote(NB[6], 't rate rises to\n  {16.4%}',
          lambda: noise_figure("noise-0.025 + denoise", "joint rate")),
    Quote(NB[6], 'ing step, against {16.4%}',
          lambda: noise_figure("noise-0.025 + denoise", "joint rate")),
    Quote(NB[6], '4% at std 0.025 (+{7.4}',
          lambda: 100 * noise_verdict("noise-0.025 + denoise", "joint diff")),
    Quote(NB[6], 's, standard error {2.5}',
          lambda: 100 * noise_verdict("noise-0.025 + denoise", "joint se")),
    Quote(NB[6], 'rd error 2.5) and {19.0%}',
          lambda: noise_figure("noise-0.05 + denoise", "joint rate")),
    Quote(NB[6], 'faces rises from {0.20}', lambda: noise_figure("today", "recall")),
    Quote(NB[6], 'ises from 0.20 to {0.29}',
          lambda: noise_figure("noise-0.025 + denoise", "recall")),
    Quote(NB[6], 'with more noise: +{0.03}', lambda: noise_verdict("noise-0.01", "bpd diff")),
    Quote(NB[6], 're noise: +0.03, +{0.16}', lambda: noise_verdict("noise-0.025", "bpd diff")),
    Quote(NB[6], 'ising step**, at +{0.16}', lambda: noise_verdict("noise-0.025", "bpd diff")),
    Quote(NB[6], '+0.03, +0.16 and +{0.43}', lambda: noise_verdict("noise-0.05", "bpd diff")),
    Quote(NB[6], '(Fréchet distance {8.52}',
          lambda: noise_figure("noise-0.05 + denoise", "unguided FD")),
    Quote(NB[6], "noise of today's ({7.37}",
          lambda: noise_figure("noise-0.025 + denoise", "unguided FD")),
    Quote(NB[6], 'd at 0.01 closer ({7.16}',
          lambda: noise_figure("noise-0.01 + denoise", "unguided FD")),
    Quote(NB[6], "noise of today's {20.4%}", lambda: noise_figure("today", "edit joint")),
    Quote(NB[6], 'ights (clean bpd +{0.10}', lambda: noise_verdict("ema", "bpd diff")),
    Quote(NB[6], 'Fréchet distance {10.27}', lambda: noise_figure("ema", "unguided FD")),
    Quote(NB[6], 'one (joint rate\n  {9.6%}',
          lambda: noise_figure("noise-0.025-ema + denoise", "joint rate")),
]

SETTINGS: list[Setting] = [
    Setting(R, "arXiv:{2106.07563}"),
    Setting(R, "Python >= {3.11}"),
    Setting(R, "Python {3.11}:"),
    Setting(R, "coupling and {15%} label"),
    Setting(R, "couplings and {15%} label"),
    Setting(R, "are not {100%}"),
    Setting(R, "val bpd {5.9} in"),
    Setting(R, "least {0.9}x real"),
    Setting(R, "at most {0.3})"),
    Setting(R, "{0.7}, floors"),
    Setting(R, "temperatures {0.5}/0.7/1.0"),
    Setting(R, "at T={0.7}; chance"),
    Setting(R, "at T={1.0}), though"),
    Setting(R, "such as \"{15%} label dropout\""),
    # the teacher's guide: exercise numbers
    *[Setting(T, f"{{{lesson}.{k}}}") for lesson in range(1, 7) for k in (1, 2)],
    Setting(Z, "every coupling, {15%} label dropout"),
    Setting(Z, "standard deviation {0.025} added"),
    Setting(Z, "model's [-{0.5}, 0.5) scale"),
    Setting(Z, "[-0.5, {0.5}) scale"),
    Setting(Z, "TarFlow's {0.05} on"),
    Setting(Z, "p * N(0, {0.025}^2 I)"),
    Setting(Z, "at least {45%} of the time"),
    Setting(Z, "as different as {0.15} pair SSIM"),
    Setting(Z, "samples at T {0.7} (denoised)"),
    Setting(Z, "--temperatures {0.7}"),
    Setting(R, "(std {0.025}, the winner"),
    Setting(S, "with **{15%} label dropout**"),
    Setting(S, "at least {0.9}x the real"),
    Setting(S, "at least {0.9}x the inputs"),
    Setting(S, "at most {0.3};"),
    Setting(S, "(T {0.7}, couplings"),
    Setting(S, "--temperatures {0.7}"),
    Setting(C, "reach 60-{70%}"),
    Setting(A, "couplings, {15%} label"),
    Setting(A, "weight {0.01} on"),
    Setting(A, "for {15%} of each"),
    Setting(A, "temperatures {0.5}, 0.7 and 1.0"),
    Setting(A, "0.5, {0.7} and 1.0"),
    Setting(A, "0.7 and {1.0}, and"),
    Setting(A, "at T={0.7} and"),
    Setting(A, "at T={1.0} (margins"),
    Setting(A, "at T={0.5}, 15.2%"),
    Setting(A, "and T={1.0}, edits"),
    Setting(A, "(decay {0.999})"),
    Setting(A, "unguided at T {0.7}"),
    Setting(A, "noise std {0.025} with one"),
    Setting(NB[1], "arXiv:{2106.07563}"),
    Setting(NB[1], "70/15/{15%}"),
    Setting(NB[1], "({15%} rounded"),
    Setting(NB[2], "section {4.6}"),
    Setting(NB[2], "section {4.4}"),
    Setting(NB[2], "where {8.0} is"),
    Setting(NB[3], "(floor {0.1},"),
    Setting(NB[4], "temperature {0.7}."),
    Setting(NB[4], "and {15%} label dropout"),
    Setting(NB[4], "about {0.025} on our"),
    Setting(NB[5], "({15%} of faces"),
    Setting(NB[5], "beyond {1.5} to show"),
    Setting(NB[5], "are not {100%}"),
    Setting(NB[5], "{0.9}x the real"),
    Setting(NB[5], "at most {0.3} ("),
    Setting(NB[6], "exercise {6.1}"),
    Setting(NB[6], "+ {0.01} x its"),
    Setting(NB[6], "for {15%} of each"),
    Setting(NB[6], "temperatures {0.5}, 0.7 and 1.0"),
    Setting(NB[6], "0.5, {0.7} and 1.0"),
    Setting(NB[6], "0.7 and {1.0}, and at"),
    Setting(NB[6], "more than {0.05} above"),
    Setting(NB[6], "temperature {0.7} (3.2"),
    Setting(NB[6], "at T={0.5} they"),
    Setting(NB[6], "at T={1.0} from"),
    Setting(NB[6], "at T={0.7} it even"),
    Setting(NB[6], "at T={0.5} and scale 2"),
    Setting(NB[6], "train with\n{15%} label"),
    Setting(NB[6], "reaches {5.9} bpd"),
    Setting(NB[6], "reach {5.9} bpd"),
    Setting(NB[6], "at T={0.7})."),
    Setting(NB[6], "at T={0.7} against"),
    Setting(NB[6], 'std {0.01}, 0.025 and 0.05 on'),
    Setting(NB[6], 'std 0.01, {0.025} and 0.05 on'),
    Setting(NB[6], '0.025 and {0.05} on the'),
    Setting(NB[6], 'decay {0.999})'),
    Setting(NB[6], 'samples at T {0.7}, the joint'),
    Setting(NB[6], '% at std {0.025} and'),
    Setting(NB[6], '% at {0.05}, against'),
    Setting(NB[6], '11.56 at {0.05} against'),
    Setting(NB[6], '% at std {0.025} (+'),
    Setting(NB[6], '% at {0.05}, both'),
    Setting(NB[6], 'at std {0.01},'),
    Setting(NB[6], '{0.025} and 0.05 (the density'),
    Setting(NB[6], '0.025 and {0.05} (the density'),
    Setting(NB[6], 'detail**: at std {0.05}'),
    Setting(NB[6], 'beyond noise; at {0.025} they'),
    Setting(NB[6], 'and at {0.01} closer'),
    Setting(NB[6], 'noise of std {0.025} and denoising'),
    Setting(NB[6], 'bpd; std {0.05}'),
]
