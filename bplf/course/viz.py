"""Figures the notebooks show: dataset counts, face grids, mean faces, samples, curves."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bplf.course.tweedie import Mixture, tweedie
from bplf.data.dataset import SPLITS, EmotionSet
from bplf.data.labels import EMOTIONS, source_name
from bplf.editing import edit_expression, sample_faces
from bplf.guidance import Guidance
from bplf.likelihood import dequantize, to_uint8
from bplf.model import PRESETS
from bplf.research import noise
from bplf.research.conditioning import best_setting, kept_edits
from bplf.research.evaluate import FACE_RATE_SHARE, MAX_PAIR_SSIM
from bplf.research.experiments import GRIDS, GridConfig
from bplf.research.metrics.fidelity import CEILING


def plot_counts(es: EmotionSet) -> plt.Figure:
    """Heatmaps of face counts, source x emotion, one panel per split."""
    counts = es.counts()
    sources = sorted(counts["source"].unique())
    fig, axes = plt.subplots(1, len(SPLITS), figsize=(4.2 * len(SPLITS), 0.6 * len(sources) + 1.6),
                             sharey=True)
    for ax, split in zip(axes, SPLITS, strict=True):
        table = (counts[counts["split"] == split]
                 .pivot_table(index="source", columns="emotion", values="count", aggfunc="sum")
                 .reindex(index=sources, columns=list(EMOTIONS)).fillna(0).astype(int))
        table.index = [source_name(s) for s in table.index]
        sns.heatmap(table, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                    annot_kws={"fontsize": 8})
        ax.set_title(f"{split} ({int(table.values.sum())} faces)")
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def face_grid(images: np.ndarray, ncols: int = 8, titles: Sequence[str] | None = None,
              row_labels: Sequence[str] | None = None, scale: float = 0.9) -> plt.Figure:
    """Show uint8 (or float) grayscale images in a grid; blank cells for missing images."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    height = nrows * scale * (1.3 if titles is not None else 1.05)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, height), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if k < n and images[k] is not None:
            img = np.squeeze(np.asarray(images[k]))
            # uint8 faces on their fixed 0..255 scale; anything else scaled to its own range
            limits = {"vmin": 0, "vmax": 255} if img.dtype == np.uint8 else {}
            ax.imshow(img, cmap="gray", interpolation="nearest", **limits)  # the true pixels
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
    if row_labels is not None:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.2)
    return fig


def faces_per_emotion(es: EmotionSet, per_emotion: int = 8, seed: int = 0) -> plt.Figure:
    """One row per emotion, ``per_emotion`` random faces each (blank where there are fewer)."""
    rng = np.random.default_rng(seed)
    images = []
    for e in range(len(EMOTIONS)):
        idx = np.flatnonzero(es.labels == e)
        pick = rng.choice(idx, size=min(per_emotion, len(idx)), replace=False) if len(idx) else []
        images += [es.images[i] for i in pick] + [None] * (per_emotion - len(pick))
    return face_grid(images, ncols=per_emotion, row_labels=EMOTIONS)


def mean_faces(es: EmotionSet) -> plt.Figure:
    """The mean face of each emotion (an average over many faces: no one is recognisable)."""
    means = [es.images[es.labels == e].mean(axis=0) if (es.labels == e).any() else None
             for e in range(len(EMOTIONS))]
    counts = [int((es.labels == e).sum()) for e in range(len(EMOTIONS))]
    return face_grid(means, ncols=len(EMOTIONS), scale=1.3,
                     titles=[f"{e}\n(n={c})" for e, c in zip(EMOTIONS, counts, strict=True)])


def draw_bi_parallel_coupling(depth: int = 3, kernel: int = 3) -> plt.Figure:
    """Schematic of one BiParallelAffineCoupling: the two conditioner branches, summed."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5)
    ax.axis("off")

    def box(x, y, text, color, w=1.3, h=0.6):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                    fc=color, ec="0.3"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10,
                                     color="0.3"))

    box(0.7, 4.2, "$x_a$", "#eeeeee", w=0.8)
    box(0.7, 2.0, "$x_b$", "#eeeeee", w=0.8)
    # convolutional branch
    xs = [2.3 + 1.5 * i for i in range(depth)]
    for i, x in enumerate(xs):
        last = i == depth - 1
        label = f"conv {kernel}x{kernel}" + ("\n(zero init)" if last else "\n+ ReLU")
        box(x, 3.0, label, "#cfe2f3")
        if not last:
            arrow(x + 0.65, 3.0, x + 0.85, 3.0)
    arrow(1.1, 2.1, xs[0] - 0.65, 2.95)
    # linear branch
    box((xs[0] + xs[-1]) / 2, 1.0, "linear: 1x1 conv (zero init)", "#d9ead3", w=3.2)
    arrow(1.1, 1.9, (xs[0] + xs[-1]) / 2 - 1.6, 1.05)
    sx = xs[-1] + 1.4
    box(sx, 2.0, "+", "#fff2cc", w=0.5)
    arrow(xs[-1] + 0.65, 2.95, sx - 0.2, 2.2)
    arrow((xs[0] + xs[-1]) / 2 + 1.6, 1.05, sx - 0.2, 1.85)
    box(sx + 1.3, 2.0, "$h=(h_s, t)$\n$s=\\sigma(h_s+2)$", "#fff2cc", w=1.5, h=0.8)
    arrow(sx + 0.25, 2.0, sx + 0.55, 2.0)
    box(sx + 1.3, 4.2, "$y_a = x_a \\odot s + t$", "#f4cccc", w=1.7)
    arrow(1.1, 4.2, sx + 0.45, 4.2)
    arrow(sx + 1.3, 2.4, sx + 1.3, 3.9)
    ax.text(0.7, 0.2, "$y_b = x_b$ (passes through unchanged)", fontsize=8)
    ax.set_title("Bi-parallel affine coupling: a convolutional and a linear branch in parallel",
                 fontsize=10)
    return fig


def samples_per_emotion(model, per_emotion: int = 8, temperature: float = 0.7,
                        seed: int = 0, guidance=1.0) -> plt.Figure:
    """One row per emotion of class-conditional samples at ``temperature`` (and ``guidance``, a
    ``bplf.guidance.Guidance`` or a coupling scale, for a model trained with label dropout),
    fixed seed."""
    guidance = Guidance.of(guidance)
    images, _ = sample_faces(model, per_emotion, temperature, seed, guidance=guidance)
    fig = face_grid(images.numpy(), ncols=per_emotion,
                    row_labels=EMOTIONS[: model.config.num_classes])
    guided = f", {guidance.label()}" if guidance.active else " (no guidance)"
    fig.suptitle(f"samples at temperature {temperature}{guided}", fontsize=9, y=1.02)
    return fig


def denoised_side_by_side(model, per_emotion: int = 4, temperature: float = 0.7, seed: int = 0,
                          guidance=1.0) -> plt.Figure:
    """The same latent draws decoded (left half of each row) and after one Tweedie denoising step
    (right half, ``BPLF.denoise`` with the noise the model was trained on), one row per emotion."""
    guidance = Guidance.of(guidance)
    raw, _ = sample_faces(model, per_emotion, temperature, seed, guidance=guidance,
                          denoise=False)
    clean, _ = sample_faces(model, per_emotion, temperature, seed, guidance=guidance,
                            denoise=True)
    k = model.config.num_classes
    rows = [np.concatenate([raw[e * per_emotion:(e + 1) * per_emotion].numpy(),
                            clean[e * per_emotion:(e + 1) * per_emotion].numpy()])
            for e in range(k)]
    titles = (["as drawn"] * per_emotion + ["denoised"] * per_emotion
              + [""] * (2 * per_emotion * (k - 1)))
    fig = face_grid(np.concatenate(rows), ncols=2 * per_emotion, titles=titles,
                    row_labels=EMOTIONS[:k])
    guided = f", {guidance.label()}" if guidance.active else " (no guidance)"
    fig.suptitle(f"the same draws at temperature {temperature}{guided}: as drawn and after one "
                 f"denoising step (noise std {model.noise_std:g})", fontsize=9, y=1.02)
    return fig


def training_curves(runs: dict[str, list[dict]], baseline: float | None = None) -> plt.Figure:
    """Train and val bpd against step and against wall time, one colour per run
    (``runs``: name -> rows of a ``metrics.jsonl``); ``baseline``: a horizontal reference."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for (name, rows), color in zip(runs.items(), sns.color_palette(n_colors=len(runs)),
                                   strict=True):
        val = [r for r in rows if "val_bpd" in r]
        for ax, key, scale in ((axes[0], "step", 1), (axes[1], "wall", 1 / 60)):
            ax.plot([r[key] * scale for r in rows], [r["train_bpd"] for r in rows], color=color,
                    alpha=0.45, lw=1, label=f"{name}: train")
            ax.plot([r[key] * scale for r in val], [r["val_bpd"] for r in val], "o-", ms=3,
                    color=color, label=f"{name}: val")
    for ax, xlabel in zip(axes, ("step", "wall time (minutes)"), strict=True):
        if baseline is not None:
            ax.axhline(baseline, color="gray", ls="--", lw=1, label="Gaussian baseline")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("bits per dimension")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def edit_grid(model, images: np.ndarray, labels: Sequence[int], means, intensity: float = 1.0,
              method: str = "mean", row_labels: Sequence[str] | None = None) -> plt.Figure:
    """Rows: uint8 faces; columns: the input, then the face edited toward each emotion."""
    x = dequantize(images, centre=True)
    cells = []
    for i, src in enumerate(labels):
        cells.append(images[i])
        xi = x[i : i + 1].expand(len(EMOTIONS), -1, -1, -1)
        edited = edit_expression(model, xi, int(src), torch.arange(len(EMOTIONS)), intensity,
                                 method, means)
        cells.extend(to_uint8(edited)[:, 0].cpu().numpy())
    fig = face_grid(cells, ncols=len(EMOTIONS) + 1, row_labels=row_labels)
    for ax, title in zip(fig.axes, ("input", *EMOTIONS), strict=False):
        ax.set_title(title, fontsize=8)
    return fig


def edit_methods_grid(model, image: np.ndarray, label: int, means,
                      methods: Sequence[str | tuple[str, object]] | None = None,
                      intensities: Sequence[float] = (0.5, 1.0, 1.5), guidance=1.0,
                      title: str = "") -> plt.Figure:
    """One uint8 face edited toward every emotion by several methods: a block of rows per
    method, a row per intensity, the input then the seven targets (eight columns of readable
    faces). ``methods``: names, or (name, guidance) pairs; a bare name of a guided method
    (``swap``, ``reexpress``) takes ``guidance``. Default: every method the model supports but
    ``gradient`` (slow, and its edits are invisible: notebook 05)."""
    pairs = []
    for m in methods or [m for m in model.edit_methods if m != "gradient"]:
        name, g = m if isinstance(m, tuple) else (m, guidance if m in ("swap", "reexpress")
                                                   else 1.0)
        pairs.append((name, Guidance.of(g)))
    k = len(EMOTIONS)
    x = dequantize(image[None], centre=True).expand(k, -1, -1, -1)
    cells, row_labels = [], []
    for method, g in pairs:
        name = f"{method} ({g.label()})" if g.active else method
        for intensity in intensities:
            edited = edit_expression(model, x, int(label), torch.arange(k), intensity, method,
                                     means, g)
            cells.extend([image, *to_uint8(edited)[:, 0].cpu().numpy()])
            row_labels.append(f"{name}\nx{intensity:g}")
    titles = ["input", *EMOTIONS] + [""] * (len(cells) - 1 - k)
    fig = face_grid(cells, ncols=1 + k, titles=titles, scale=0.8, row_labels=row_labels)
    if title:
        fig.suptitle(title, fontsize=9, y=1.02)
    return fig


def confusion_heatmap(confusion: Sequence[Sequence[int]], title: str = "") -> plt.Figure:
    """Row-normalised confusion matrix (true emotion x predicted), with counts per row."""
    conf = np.asarray(confusion, dtype=float)
    rates = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.8, 4.6))
    sns.heatmap(rates, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, ax=ax, cbar=False,
                xticklabels=EMOTIONS,
                yticklabels=[f"{e} ({int(n)})" for e, n in zip(EMOTIONS, conf.sum(1),
                                                               strict=True)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (faces)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _config_palette() -> list[tuple[float, float, float]]:
    """40 distinct colours: tab20's ten strong hues first, then their light partners, then
    tab20b's."""
    tab20, tab20b = sns.color_palette("tab20", 20), sns.color_palette("tab20b", 20)
    return tab20[0::2] + tab20[1::2] + tab20b[0::2] + tab20b[1::2]


def config_colors(configs: Sequence[str] = ()) -> dict[str, tuple[float, float, float]]:
    """One fixed colour per ablation config, the same in every grid, budget and figure: every
    config of ``bplf.research.experiments.GRIDS`` (names of one model share its colour: the ``bplf``
    preset is ``depth3-3x3``, ``patch``, ``both``, ``bplf`` and ``top-prior``), plus
    ``configs`` not in the grids, which take the colours left over, in order."""
    def spec(config: GridConfig) -> str:
        model = dataclasses.replace(PRESETS[config.preset], **config.model).to_dict()
        return json.dumps([model, config.train, config.match], sort_keys=True)

    palette = _config_palette()
    by_model: dict[str, int] = {spec(GridConfig("bplf")): 0}  # the first colour everywhere
    colors: dict[str, tuple[float, float, float]] = {}
    for grid in GRIDS.values():
        for name, config in grid.items():
            colors[name] = palette[by_model.setdefault(spec(config), len(by_model)) % len(palette)]
    unused = [c for c in palette if c not in colors.values()] or palette
    for k, name in enumerate(n for n in dict.fromkeys(configs) if n not in colors):
        colors[name] = unused[k % len(unused)]
    return colors


def ablation_curves(results, x: str = "step", title: str = "",
                    ax: plt.Axes | None = None) -> plt.Figure:
    """Val bpd against ``x`` ("step" or "wall", in minutes) per config of a grid: the mean over
    seeds at each evaluation, with a band of one standard deviation; each config in its colour
    of ``config_colors``."""
    stats = results.groupby(["config", "step"]).agg(
        bpd=("val_bpd", "mean"), sd=("val_bpd", "std"), wall=("wall", "mean")).reset_index()
    fig, ax = plt.subplots(figsize=(7, 4)) if ax is None else (ax.figure, ax)
    configs = list(dict.fromkeys(results["config"]))
    colors = config_colors(configs)
    for config in configs:
        color = colors[config]
        c = stats[stats["config"] == config]
        xs = c["step"] if x == "step" else c["wall"] / 60
        ax.plot(xs, c["bpd"], "o-", ms=3, color=color, label=config)
        ax.fill_between(xs, c["bpd"] - c["sd"].fillna(0), c["bpd"] + c["sd"].fillna(0),
                        color=color, alpha=0.2)
    ax.set_xlabel("step" if x == "step" else "wall time (minutes)")
    ax.set_ylabel("val bits per dimension")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def budget_curves(results: dict, x: str = "step", title: str = "") -> plt.Figure:
    """``ablation_curves`` of one grid under each budget (``{budget: rows}``), side by side."""
    results = {b: r for b, r in results.items() if not r.empty}
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4), squeeze=False)
    for ax, (budget, rows) in zip(axes[0], results.items(), strict=True):
        ablation_curves(rows, x, f"{title} ({budget} budget, {rows['hardware'].iloc[0]})", ax)
    return fig


def conditioning_figure(rows, chance: float = 1 / len(EMOTIONS)) -> plt.Figure:
    """The conditioning experiment (``bplf.research.conditioning`` rows) in three panels: sample
    fidelity and Fréchet distance against the guidance scale (a line per temperature for each
    config trained with label dropout; every other config a dot at guidance 1 and the
    temperature of its best fidelity), and per config the best sample fidelity and edit hit-rate
    at intensity 1 (of the edits that keep the person, ``conditioning.kept_edits``); seed
    means with one standard deviation, chance (1/7) dashed."""
    configs = list(dict.fromkeys(rows["config"]))
    colors = config_colors(configs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    plain = best_setting(rows[rows["guidance"] == 1.0], "sample_accuracy", ["temperature"])
    best_t = plain.groupby("config")["temperature"].first()
    styles = dict(zip(sorted(rows["temperature"].dropna().unique()), ["-", "--", ":"] * 3,
                      strict=False))
    for ax, metric, label in ((axes[0], "sample_accuracy", "sample fidelity (balanced acc.)"),
                              (axes[1], "sample_fd", "Fréchet distance to real faces")):
        m = rows[rows["metric"] == metric]
        stats = m.groupby(["config", "temperature", "guidance"])["value"].agg(["mean", "std"])
        for config in configs:
            c = stats.loc[config].reset_index()
            if c["guidance"].nunique() > 1:
                for t, ct in c.groupby("temperature"):
                    ax.errorbar(ct["guidance"], ct["mean"], ct["std"].fillna(0),
                                ls=styles[t], marker="o", ms=3, capsize=2, color=colors[config],
                                label=f"{config}, T={t}")
            else:  # at the temperature of its best fidelity
                best = c[c["temperature"] == best_t[config]].iloc[0]
                ax.errorbar([1.0], [best["mean"]], [0 if np.isnan(best["std"]) else best["std"]],
                            marker="s", capsize=2, color=colors[config],
                            label=f"{config} (T={best['temperature']})")
        ax.set_xlabel("guidance scale (1 = the model's own density)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].axhline(chance, color="k", ls="--", lw=1)
    axes[0].legend(fontsize=7, ncol=2)
    fid = best_setting(rows, "sample_accuracy", ["temperature", "guidance"])
    edits = best_setting(kept_edits(rows), "edit_hit_rate", ["method", "guidance"])
    x = np.arange(len(configs))
    bars = ((-0.2, fid, "sample fidelity (best setting)", ""),
            (0.2, edits, "edit hit-rate (best that keeps the person)", "//"))
    for offset, values, name, hatch in bars:
        stats = values.groupby("config")["value"].agg(["mean", "std"]).reindex(configs)
        axes[2].bar(x + offset, stats["mean"], 0.4, yerr=stats["std"].fillna(0), capsize=2,
                    color=[colors[c] for c in configs], hatch=hatch, edgecolor="k", lw=0.5,
                    label=name)
    axes[2].axhline(chance, color="k", ls="--", lw=1, label="chance (1/7)")
    axes[2].set_xticks(x, configs, rotation=30, ha="right", fontsize=8)
    axes[2].set_ylabel("read as the asked emotion")
    axes[2].legend(fontsize=7)
    axes[2].grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def noise_figure(rows) -> plt.Figure:
    """The noise experiment (``bplf.research.noise`` rows), one panel per figure of the issue:
    at part 1's recommended setting the joint rate (a face showing its emotion) and the pair
    SSIM (diversity; lower is more diverse), the unguided samples' Fréchet distance, the
    recommended edit's joint hit-rate, and the clean-face test bpd. A bar per config, plain
    as drawn and hatched after one denoising step; seed means, each seed a dot."""
    figures = noise.per_seed_figures(rows)
    variants = list(dict.fromkeys(figures["clean test bpd"]["config"]))
    colors = config_colors([v.removesuffix(noise.DENOISED) for v in variants])
    panels = (("joint rate", "joint rate, recommended setting"),
              ("pair SSIM", "pair SSIM, recommended setting"),
              ("unguided FD", "Fréchet distance, unguided T 0.7"),
              ("edit joint", "edit joint hit-rate, recommended edit"),
              ("clean test bpd", "test bpd of clean faces"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 4))
    x = np.arange(len(variants))
    for ax, (key, title) in zip(axes, panels, strict=True):
        values = figures[key]
        means = values.groupby("config")["value"].mean().reindex(variants)
        ax.bar(x, means, 0.7, color=[colors[v.removesuffix(noise.DENOISED)] for v in variants],
               hatch=["//" if v.endswith(noise.DENOISED) else "" for v in variants],
               edgecolor="k", lw=0.5)
        for i, v in enumerate(variants):
            seeds = values.loc[values["config"] == v, "value"]
            ax.plot([i] * len(seeds), seeds, "k.", ms=4)
        low, high = np.nanmin(values["value"]), np.nanmax(values["value"])
        pad = 0.15 * (high - low) + 1e-3
        ax.set_ylim(max(0, low - 3 * pad) if key != "clean test bpd" else low - pad, high + pad)
        ax.set_xticks(x, variants, rotation=40, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def _rule_lines(rows: list[dict]) -> dict[tuple[str, float], list[dict]]:
    """Sample rows grouped into lines of one guidance rule at one temperature, by scale: the
    coupling rule alone and the prior rule alone (both through the unguided row at 1)."""
    lines: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        g = r.get("guidance_config") or {"prior": 1.0, "coupling": r["guidance"]}
        if g.get("levels") is not None or g.get("schedule", "constant") != "constant":
            continue
        if g["prior"] == 1.0:
            lines.setdefault(("couplings", r["temperature"]), []).append(
                {**r, "scale": g["coupling"]})
        if g["coupling"] == 1.0:
            lines.setdefault(("prior", r["temperature"]), []).append({**r, "scale": g["prior"]})
    return {k: sorted(v, key=lambda r: r["scale"]) for k, v in lines.items() if len(v) > 1}


def guidance_figure(report: dict) -> plt.Figure:
    """What guidance trades, from a ``python -m bplf evaluate`` report: face rate, the
    classifier's reading of the emotion and the joint rate (a face *and* the emotion) against
    the guidance scale, a line per rule and temperature, with real faces as the reference (and
    the face-rate floor of the recommendation, ``evaluate.FACE_RATE_SHARE`` of theirs)."""
    rows = report["fidelity"]
    own = [r for r in rows if r["generator"] == report["checkpoint"]]
    real = next(r for r in rows if r["generator"] == CEILING)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9), sharey=True)
    panels = (("face_rate", "face rate (Haar cascade finds a face)"),
              ("accuracy", "read as the emotion (classifier)"),
              ("joint_rate", "joint rate: a face AND the emotion"))
    temps = sorted({r["temperature"] for r in own})
    for ax, (key, label) in zip(axes, panels, strict=True):
        for (rule, t), line in _rule_lines(own).items():
            color = "C3" if rule == "couplings" else f"C{temps.index(t)}"
            ax.plot([r["scale"] for r in line], [r[key] for r in line], marker="o", ms=3,
                    color=color, ls="--" if rule == "couplings" else "-",
                    label=f"{rule} rule, T={t}")
        ax.axhline(real[key], color="k", lw=1, label="real test faces")
        if key == "face_rate":
            ax.axhline(FACE_RATE_SHARE * real[key], color="k", lw=1, ls=":",
                       label=f"{FACE_RATE_SHARE:g} x real faces")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("guidance scale (1 = the model's own density)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of samples")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def diversity_figure(report: dict) -> plt.Figure:
    """The fidelity-diversity curve: each sample setting's joint rate against its pair SSIM
    (how alike two samples of one emotion are), real faces as a star, the recommendation's
    limit (``evaluate.MAX_PAIR_SSIM``) as a line and the recommended setting circled; settings
    that fall below the face-rate floor are hollow."""
    rows = report["fidelity"]
    own = [r for r in rows if r["generator"] == report["checkpoint"]]
    real = next(r for r in rows if r["generator"] == CEILING)
    best = report["recommended"]["samples"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    temps = sorted({r["temperature"] for r in own})
    for r in own:
        face_ok = r["face_rate"] >= FACE_RATE_SHARE * real["face_rate"]
        color = f"C{temps.index(r['temperature'])}"
        ax.plot(r["pair_ssim"], r["joint_rate"], "o", color=color, ms=5,
                mfc=color if face_ok else "none")
        ax.annotate(r["guidance"], (r["pair_ssim"], r["joint_rate"]), fontsize=5.5,
                    xytext=(3, 2), textcoords="offset points")
        if r["temperature"] == best["temperature"] and r["guidance"] == best["guidance"]:
            ax.plot(r["pair_ssim"], r["joint_rate"], "o", ms=13, mfc="none", color="k")
    for t in temps:
        ax.plot([], [], "o", color=f"C{temps.index(t)}", label=f"T={t}")
    ax.plot(real["pair_ssim"], real["joint_rate"], "*", ms=12, color="k",
            label="real test faces")
    ax.axvline(MAX_PAIR_SSIM, color="grey", ls="--", lw=1, label="most alike allowed")
    ax.set_xlabel("pair SSIM of two samples of one emotion (higher: less diverse)")
    ax.set_ylabel("joint rate (a face AND the emotion)")
    ax.set_title("circled: recommended; hollow: too few faces", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def edits_figure(report: dict) -> plt.Figure:
    """Edits against intensity, from a ``python -m bplf evaluate`` report: the joint hit-rate
    (a face AND the target emotion) and the SSIM to the input, a line per method and guidance,
    with the same-person reference (two real photos of one person) as the line an edit must
    stay above; hollow markers where the edits' face rate falls below the floor."""
    edits = report.get("edits", [])
    ref = report["reference"]
    floor = FACE_RATE_SHARE * ref["edit_inputs"]["face_rate"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in edits:
        groups.setdefault((e["method"], e["guidance"]), []).append(e)
    for i, ((method, g), line) in enumerate(groups.items()):
        line = sorted(line, key=lambda e: e["intensity"])
        name = method if g == "unguided" else f"{method} ({g})"
        for ax, key in zip(axes, ("joint_rate", "ssim"), strict=True):
            color = f"C{i % 10}"
            ax.plot([e["intensity"] for e in line], [e[key] for e in line],
                    color=color, lw=1, ls="-" if i < 10 else "--",
                    label=name if key == "joint_rate" else None)
            for e in line:
                ax.plot(e["intensity"], e[key], "o", ms=4, color=color,
                        mfc=color if e["face_rate"] >= floor else "none")
    axes[1].axhline(ref["same_person"]["ssim"], color="k", lw=1,
                    label="same person, another expression")
    axes[0].set_ylabel("joint hit-rate (a face AND the target)")
    axes[1].set_ylabel("SSIM to the input face")
    for ax in axes:
        ax.set_xlabel("intensity")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].legend(fontsize=7)
    axes[0].set_title("hollow: the edits' face rate fell below the floor", fontsize=8)
    fig.tight_layout()
    return fig


def tweedie_figure(mixture: Mixture, sigma: float, n: int = 200_000, seed: int = 0) -> plt.Figure:
    """Notebook 04's check of Tweedie's formula on a 1-D mixture (``bplf.course.tweedie``): the
    clean and the noisy density; and the posterior mean of the clean value given a noisy one,
    exact, from one Tweedie step, and as the average clean value of simulated pairs."""
    y = torch.linspace(-0.5, 0.5, 401, dtype=torch.float64)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(y, mixture.log_prob(y).exp(), label="clean density p(x)")
    a.plot(y, mixture.log_prob(y, sigma).exp(), label=f"noisy density p_σ(y), σ = {sigma:g}")
    a.set(xlabel="pixel value", ylabel="density", title="what a noise-trained model learns")
    a.legend(fontsize=8)
    x, noisy = mixture.sample(n, sigma, seed)
    edges = torch.linspace(-0.45, 0.45, 37, dtype=torch.float64)
    which = torch.bucketize(noisy, edges)
    centres, means = [], []
    for k in range(1, len(edges)):
        inside = which == k
        if inside.sum() > 200:
            centres.append(float(noisy[inside].mean()))
            means.append(float(x[inside].mean()))
    b.plot(y, y, ":", color="grey", label="no denoising: x̂ = y")
    b.plot(y, mixture.posterior_mean(y, sigma), lw=3, alpha=0.5, label="exact E[x | y]")
    b.plot(y, tweedie(lambda v: mixture.log_prob(v, sigma), y, sigma), "--",
           label="Tweedie: y + σ² d/dy log p_σ(y)")
    b.plot(centres, means, "o", ms=4, label=f"mean clean x of {n:,} simulated pairs")
    b.set(xlabel="noisy value y", ylabel="estimate of the clean x",
          title="one denoising step is the posterior mean")
    b.legend(fontsize=8)
    fig.tight_layout()
    return fig
