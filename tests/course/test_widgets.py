"""The explorers of notebooks 05 and 06: set a control's value, check what was drawn."""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from bplf.course.viz import (
    ablation_curves,
    config_colors,
    diversity_figure,
    edits_figure,
    guidance_figure,
)
from bplf.course.widgets import (
    AblationExplorer,
    EditExplorer,
    SampleExplorer,
    add_title,
    face_label,
    picker_faces,
    typical_face,
)
from bplf.data import EMOTIONS, EmotionSet
from bplf.editing import edit_expression, latent_means
from bplf.guidance import Guidance
from bplf.likelihood import dequantize, to_uint8
from bplf.research.experiments import COLUMNS, GRIDS
from bplf.research.metrics.fidelity import CEILING, as_frame, ceiling_label

matplotlib.use("Agg")


def three_sources(es: EmotionSet) -> EmotionSet:
    """The synthetic test faces relabelled as three sources of very different sizes (as
    FER-2013, CK+ and JAFFE are), with a line drawing and a near-black face among them."""
    test = es.select(split="test")
    n = len(test)
    source = np.array(["fer2013"] * n, dtype=object)
    source[:12], source[12:20] = "ckplus", "jaffe"
    images = test.images.copy()
    line = np.full((48, 48), 250, np.uint8)
    line[10:38:6, 8:40] = 10  # thin dark lines on white: mean and contrast far from a photo's
    images[0], images[1] = line, np.full((48, 48), 4, np.uint8)
    return EmotionSet(images, test.labels, source.astype(str), test.subject, test.split)


def test_picker_has_every_source_labelled(synthetic_es):
    faces = three_sources(synthetic_es)
    for n in (10, 60):
        picked = picker_faces(faces, n, seed=3)
        counts = {s: int((picked.source == s).sum()) for s in set(picked.source)}
        assert set(counts) == {"fer2013", "ckplus", "jaffe"} and len(picked) == n
        assert max(counts.values()) - min(counts.values()) <= 1 or counts["jaffe"] == 8
    picked = picker_faces(faces, 60, seed=3)
    assert (picked.source == "jaffe").sum() == 8  # all of the smallest source, the rest shared
    labels = [face_label(picked, i) for i in range(len(picked))]
    assert labels[0] == f"CK+ · {EMOTIONS[picked.labels[0]]} · #0"
    assert {lab.split(" · ")[0] for lab in labels} == {"FER-2013", "CK+", "JAFFE"}
    assert len(set(labels)) == len(labels)


class ConfidentIn:
    """A stand-in classifier, sure of the true emotion of one face and unsure of the rest."""

    def __init__(self, faces: EmotionSet, index: int):
        self.faces, self.index = faces, index
        self.layer = torch.nn.Linear(1, 1)

    def parameters(self):
        return self.layer.parameters()

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        target = dequantize(self.faces.images[self.index : self.index + 1], centre=True)
        logits = torch.zeros(len(x), len(EMOTIONS))
        same = (x - target).abs().flatten(1).amax(1) < 1e-6
        logits[same, int(self.faces.labels[self.index])] = 10.0
        return logits


def test_counts_figure_names_the_sources_as_the_course_writes_them(synthetic_es):
    from bplf.course.viz import plot_counts

    fig = plot_counts(three_sources(synthetic_es))
    rows = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels()} - {""}
    assert rows == {"CK+", "FER-2013", "JAFFE"}, rows
    matplotlib.pyplot.close(fig)


def test_typical_face_skips_line_drawings_and_dark_faces(synthetic_es):
    faces = three_sources(synthetic_es)
    default = typical_face(faces)
    assert default not in (0, 1)
    pixels = faces.images[default].astype(float)
    assert 60 < pixels.mean() < 200 and pixels.std() > 20
    # with a classifier: its most confident face among those of normal contrast
    assert typical_face(faces, ConfidentIn(faces, 0)) not in (0, 1)  # sure, but a line drawing
    assert typical_face(faces, ConfidentIn(faces, default)) == default
    # not of the target emotion, so the first edit shows a change
    target = EMOTIONS[faces.labels[default]]
    assert faces.labels[typical_face(faces, avoid=target)] != EMOTIONS.index(target)


def test_edit_explorer_opens_on_a_typical_face_with_a_sane_edit(small_model, synthetic_es,
                                                                small_means):
    faces = three_sources(synthetic_es)
    ex = EditExplorer.on_test_faces(small_model, faces, small_means, n=30, seed=3, target="happy")
    i = int(ex.face.value)
    assert ex.faces.labels[i] != EMOTIONS.index("happy")
    assert (ex.images[0] == ex.faces.images[i]).all()
    assert {lab.split(" · ")[0] for lab, _ in ex.face.options} == {"FER-2013", "CK+", "JAFFE"}
    assert ex.face.style.description_width == "initial"
    edited = ex.images[1].astype(float)
    assert 40 < edited.mean() < 215 and edited.std() > 15, "the first edit looks like a face"
    ex.target.value = "angry"
    assert ex.images.shape == (2, 48, 48) and (ex.images[0] == ex.faces.images[i]).all()


def test_sample_explorer_disables_the_seed_at_temperature_zero(small_model):
    ex = SampleExplorer(small_model, n=4, emotion="happy", temperature=0.7, seed=0)
    assert ex.temperature.style.description_width == "initial"
    assert not ex.seed.disabled and ex.note.value == ""
    ex.temperature.value = 0.0
    assert ex.seed.disabled and "seed changes nothing" in ex.note.value
    assert "no seed" in ex.title() and (ex.images == ex.images[0]).all()
    ex.temperature.value = 0.5
    assert not ex.seed.disabled and ex.note.value == "" and "seed 0" in ex.title()


def test_explorers_guide_samples_and_swap_edits(guided_model, synthetic_es):
    """The guidance sliders change the samples and the guided edits (and nothing else: they are
    off for the other methods), are named in the title, and end where the limits say faces
    break."""
    ex = SampleExplorer(guided_model, n=4, emotion="happy", temperature=0.7,
                        guidance=Guidance(prior=2, coupling=3), limits={"prior": 4, "coupling": 3})
    guided = ex.images.copy()
    assert "prior 2 · couplings 3" in ex.title()
    assert (ex.guidance.prior.max, ex.guidance.coupling.max) == (4, 3)
    assert "prior rule up to 4" in ex.guidance.note.value
    ex.guidance.coupling.value = 1.0
    assert not (ex.images == guided).all() and ex.title().endswith("prior 2, seed 0")
    assert SampleExplorer(guided_model, n=4).guidance is None  # no slider unless asked for
    means = latent_means(guided_model, synthetic_es, per_emotion=20)
    faces = synthetic_es.select(split="test").subsample(5, seed=0)
    edit = EditExplorer(guided_model, faces, means, target="happy", method="swap",
                        guidance=4.0, limits={"prior": 8, "coupling": 8,
                                              "intensity": {"swap": 1.5, "mean": 3.0}})
    assert edit.method.value == "swap" and not edit.guidance.coupling.disabled
    assert edit.guidance.prior.disabled and edit.intensity.max == 1.5
    swapped = edit.images[1].copy()
    edit.guidance.coupling.value = 1.0
    assert not (edit.images[1] == swapped).all()
    edit.method.value = "mean"
    assert edit.guidance.coupling.disabled and not edit.applied_guidance.active
    assert edit.intensity.max == 3.0
    edit.method.value = "reexpress"
    edit.guidance.prior.value = 3.0
    assert edit.applied_guidance == Guidance(prior=3.0)
    with pytest.raises(ValueError, match="method must be one of"):
        EditExplorer(guided_model, faces, means, method="warp")


def test_explorer_controls_get_their_width(guided_model, synthetic_es):
    """Sliders at least as wide as their label (~8 px a character at JupyterLab's 13 px font)
    plus a 200 px track; method buttons in one row, sized to their labels; the row wraps
    instead of squeezing."""
    means = latent_means(guided_model, synthetic_es, per_emotion=5)
    faces = synthetic_es.select(split="test").subsample(5, seed=0)
    explorers = [EditExplorer(guided_model, faces, means, method="swap", guidance=2.0),
                 SampleExplorer(guided_model, n=4, temperature=0.7, guidance=2.0)]
    for ex in explorers:
        row = ex.widget.children[0]
        assert row.layout.flex_flow == "row wrap"
        sliders = [c for c in row.children
                   if isinstance(c, widgets.FloatSlider | widgets.IntSlider)]
        assert len(sliders) >= 2
        for slider in sliders:
            width = int(slider.layout.min_width.removesuffix("px"))
            assert width >= 8 * len(slider.description) + 200, (slider.description, width)
    buttons = explorers[0].method
    assert buttons.style.button_width == "auto" and buttons.layout.width == "auto"


def test_sample_explorer_title_clears_the_faces(small_model):
    ex = SampleExplorer(small_model, n=8, temperature=0.7)
    fig = ex.figure()
    fig.canvas.draw()
    title = fig._suptitle.get_window_extent()
    top = max(ax.get_window_extent().y1 for ax in fig.axes)
    assert title.y0 >= top, "the title sits above every face"
    assert title.y1 <= fig.bbox.y1 + 1, "and inside the figure"
    fig2 = add_title(matplotlib.pyplot.figure(figsize=(4, 1)), "x")
    assert fig2.get_figheight() == pytest.approx(1.3)


def test_config_colors_are_fixed_across_grids_and_budgets():
    colors = config_colors()
    assert set(colors) == {c for grid in GRIDS.values() for c in grid}
    # one model, one colour: the bplf preset under its four names
    assert colors["bplf"] == colors["depth3-3x3"] == colors["patch"] == colors["both"]
    for grid in GRIDS.values():  # distinct within every grid
        assert len({colors[c] for c in grid}) == len(grid)
    # the same whatever else is plotted; unknown configs take colours no grid config has
    extra = config_colors(["mine", "bplf", "other"])
    assert all(extra[c] == colors[c] for c in colors)
    assert extra["mine"] != extra["other"] and extra["mine"] not in colors.values()


def fake_results(configs: list[str], budget: str, shift: float = 0.0) -> pd.DataFrame:
    rows = [{"grid": "g", "config": c, "seed": s, "step": step, "wall": step * 0.1,
             "train_bpd": 6.0, "val_bpd": 7.0 - step / 1000 + k * 0.05 + shift + s * 0.01,
             "params": 1, "images_per_s": 1.0, "budget": budget, "hardware": "test"}
            for k, c in enumerate(configs) for s in (0, 1) for step in (100, 200)]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_ablation_explorer_keeps_one_colour_per_config():
    baselines = list(GRIDS["baselines"])
    results = {
        "gpu": {"baselines": fake_results(baselines, "gpu"),
                "branches": fake_results(list(GRIDS["branches"]), "gpu")},
        # the cpu budget has no normflows peer: the same config must keep its colour
        "cpu": {"baselines": fake_results(baselines[::-1][1:], "cpu", 0.1),
                "branches": pd.DataFrame(columns=COLUMNS)},
    }
    ex = AblationExplorer(results)
    assert (ex.budget.value, ex.grid.value) == ("gpu", "baselines")
    gpu = dict(ex.colors)
    assert set(gpu) == set(baselines)
    ex.budget.value = "cpu"
    assert set(ex.colors) == set(baselines) - {"glow-normflows"}
    assert all(ex.colors[c] == gpu[c] for c in ex.colors)
    ex.grid.value = "branches"  # no results under this budget: nothing drawn
    assert ex.rows.empty and ex.colors == {}
    ex.budget.value = "gpu"
    assert ex.colors["both"] == gpu["bplf"]  # the same model in another grid
    ex.axis.value = "wall"
    assert ex.axis.value == "wall" and ex.colors["both"] == gpu["bplf"]
    fig = ablation_curves(results["gpu"]["branches"], "step")
    assert {ln.get_label() for ln in fig.axes[0].lines} == set(GRIDS["branches"])


def test_ceiling_label_follows_the_loaded_faces(synthetic_es):
    rows = [{"generator": CEILING, "temperature": None, "accuracy": 0.5, "fd": 0.1,
             "per_emotion_accuracy": {}, "fd_per_emotion": {}}]
    assert ceiling_label(synthetic_es) == "synthetic faces (ceiling)"
    assert as_frame(rows, synthetic_es).index[0][0] == "synthetic faces (ceiling)"
    assert as_frame(rows).index[0][0] == CEILING == "real faces (ceiling)"


RAW = os.environ.get("BPLF_RAW_DIR")


@pytest.mark.skipif(not RAW or not (Path(RAW) / "fer2013.zip").exists(),
                    reason="the public datasets are not in BPLF_RAW_DIR")
def test_default_face_of_the_real_test_set_edits_to_a_face():
    """On the real test faces, the shipped model and classifier: the explorer of notebook 05
    opens on a face of normal contrast whose edits toward every emotion look like faces (the
    old default, a FER-2013 line drawing, edited to a near-black square)."""
    import bplf
    from bplf.research.metrics import load_classifier

    es = bplf.load_emotion_set()
    assert not es.synthetic
    test = es.select(split="test")
    model = bplf.load_pretrained()
    faces = picker_faces(test, 60, seed=3)
    assert set(faces.source) == {"fer2013", "ckplus", "jaffe"}
    i = typical_face(faces, load_classifier(), avoid="happy")
    means = latent_means(model, es, per_emotion=50)
    x = dequantize(faces.images[i : i + 1], centre=True).expand(len(EMOTIONS), -1, -1, -1)
    for method in ("mean", "prior"):
        edited = to_uint8(edit_expression(model, x, int(faces.labels[i]),
                                          torch.arange(len(EMOTIONS)), 1.5, method, means))
        pixels = edited[:, 0].flatten(1).float()
        assert (pixels.mean(1) > 60).all() and (pixels.mean(1) < 200).all(), method
        assert (pixels.std(1) > 30).all(), method


def test_person_figures_draw_each_rule_and_mark_what_breaks(person_report):
    """Face rate, reading and joint rate per rule and temperature against real faces; the
    fidelity-diversity curve circles the recommended setting; hollow edits lost the face."""
    from bplf.research.evaluate import recommend

    report = person_report | {"recommended": recommend(person_report)}
    fig = guidance_figure(report)
    face, read, joint = fig.axes
    lines = {line.get_label(): line for line in joint.get_lines()}
    assert list(lines["prior rule, T=1.0"].get_xdata()) == [1.0, 2.0, 4.0]
    assert list(lines["prior rule, T=1.0"].get_ydata()) == [0.08, 0.34, 0.4]
    assert list(lines["couplings rule, T=0.7"].get_ydata()) == [0.21, 0.06]
    assert lines["real test faces"].get_ydata()[0] == 0.36
    assert {line.get_label() for line in face.get_lines()} >= {"0.9 x real faces"}
    curve = diversity_figure(report).axes[0]
    circled = [line for line in curve.get_lines() if line.get_markersize() == 13]
    assert len(circled) == 1 and circled[0].get_ydata()[0] == 0.4  # T 1.0, prior 4
    edits = edits_figure(report).axes[0]
    hollow = [line for line in edits.get_lines()
              if line.get_marker() == "o" and line.get_markerfacecolor() == "none"]
    # the exaggerated mean edit and the swap fell below 0.9 x the inputs' face rate
    assert [line.get_ydata()[0] for line in hollow] == [0.12, 0.09]
