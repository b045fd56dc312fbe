"""Figures the notebooks show: dataset counts, face grids, mean faces."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from bplf.data.dataset import SPLITS, EmotionSet
from bplf.data.labels import EMOTIONS


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
            ax.imshow(img, cmap="gray", **limits)
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
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

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
