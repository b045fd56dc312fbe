"""Interactive explorers: class-conditional samples and expression editing (notebook 05), and
the ablation results (notebook 06).

Each explorer keeps its controls as attributes (``emotion``, ``temperature``, ...), redraws on
every change, and keeps what it last drew (``images``, uint8, for the face explorers; ``rows``
and ``colors`` for the ablation explorer), so a test can set a control's value and check what
was drawn. ``widget`` is the box to display.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from matplotlib.colors import to_rgb

from bplf.course.viz import ablation_curves, face_grid
from bplf.data import EMOTIONS, EmotionSet
from bplf.data.labels import source_name
from bplf.editing import MAX_INTENSITY, edit_expression
from bplf.guidance import Guidance
from bplf.likelihood import dequantize, to_uint8
from bplf.model import BPLF
from bplf.research.evaluate import FACE_RATE_SHARE
from bplf.research.metrics.classifier import predict

#: a label wide enough for every control's description (no "temperat…")
WIDE = {"description_width": "initial"}
#: a slider's least width: its label plus a track long enough to set a value (an HBox of
#: controls squeezed the explorers' sliders to ~30 px)
SLIDER_WIDTH = 360
#: the guidance sliders' top where no evaluation says where faces break
GUIDANCE_MAX = 8.0
#: why the seed is off at temperature 0
T0_NOTE = ("At temperature 0 every sample is the emotion's mean latent decoded (the mode of "
           "the prior): all samples are the same face, so the seed changes nothing.")


def face_label(faces: EmotionSet, i: int) -> str:
    """A picker entry: source, emotion and index, e.g. ``CK+ · happy · #12``."""
    return f"{source_name(faces.source[i])} · {EMOTIONS[faces.labels[i]]} · #{i}"


def picker_faces(faces: EmotionSet, n: int = 60, seed: int = 0) -> EmotionSet:
    """At most ``n`` faces with every source present: an equal share per source (all of a
    source that has fewer; the rest from the others), ordered by source, then emotion."""
    sources = sorted(map(str, set(faces.source)))
    left, take = n, {}
    for k, source in enumerate(sorted(sources, key=lambda s: (faces.source == s).sum())):
        available = int((faces.source == source).sum())
        take[source] = min(available, left // (len(sources) - k))
        left -= take[source]
    index = []
    for source in sources:
        idx = np.flatnonzero(faces.source == source)
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(idx, size=take[source], replace=False))
        index.extend(chosen[np.argsort(faces.labels[chosen], kind="stable")])
    return faces._take(np.asarray(index, dtype=int))


def typical_face(faces: EmotionSet, classifier: torch.nn.Module | None = None,
                 avoid: str | None = None) -> int:
    """The index of a clear, typical face to open an editor on. Candidates: faces whose
    brightness and contrast (pixel mean and std) both lie in the set's interquartile range, which
    leaves out line drawings, near-black and washed-out images, and whose emotion is not
    ``avoid`` (the editor's target) where there are such faces. Among them the face the
    emotion classifier recognises with the highest confidence; without a classifier, the one
    closest to the median brightness and contrast."""
    pixels = faces.images.reshape(len(faces), -1).astype(np.float64)
    stats = np.stack([pixels.mean(1), pixels.std(1)], axis=1)
    lo, mid, hi = np.percentile(stats, [25, 50, 75], axis=0)
    normal = ((stats >= lo) & (stats <= hi)).all(axis=1)
    candidates = np.flatnonzero(normal) if normal.any() else np.arange(len(faces))
    if avoid is not None and (faces.labels[candidates] != EMOTIONS.index(avoid)).any():
        candidates = candidates[faces.labels[candidates] != EMOTIONS.index(avoid)]
    if classifier is None:
        spread = np.maximum(hi - lo, 1e-6)
        return int(candidates[np.argmin((((stats[candidates] - mid) / spread) ** 2).sum(1))])
    probs = predict(classifier, dequantize(faces.images[candidates], centre=True)).numpy()
    confidence = probs[np.arange(len(candidates)), faces.labels[candidates]]
    return int(candidates[np.argmax(confidence)])


def add_title(fig: plt.Figure, title: str, height: float = 0.3) -> plt.Figure:
    """Give ``fig`` a title in its own band above the axes (``height`` inches), so it never
    overlaps them."""
    h = fig.get_figheight()
    fig.set_figheight(h + height)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, h / (h + height)))
    fig.suptitle(title, fontsize=9, y=1 - 0.5 * height / (h + height), va="center")
    return fig


def control_row(controls: tuple[widgets.Widget, ...]) -> widgets.HBox:
    """The controls side by side, wrapping onto a new line where the row is too narrow: each
    slider at least ``SLIDER_WIDTH`` px wide, toggle buttons in one row sized to their labels."""
    for control in controls:
        if isinstance(control, widgets.FloatSlider | widgets.IntSlider):
            control.layout.min_width = f"{SLIDER_WIDTH}px"
        elif isinstance(control, widgets.ToggleButtons):
            control.style.button_width = "auto"
            control.layout.width = "auto"
            control.layout.flex = "0 0 auto"
    return widgets.HBox(list(controls), layout=widgets.Layout(flex_flow="row wrap",
                                                              align_items="center"))


class _Explorer:
    images: np.ndarray

    def _watch(self, *controls: widgets.ValueWidget, below: tuple[widgets.Widget, ...] = ()
               ) -> None:
        self.output = widgets.Output()
        for control in controls:
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([control_row(controls), *below, self.output])
        self.update()

    def render(self) -> np.ndarray:
        raise NotImplementedError

    def figure(self) -> plt.Figure | None:
        raise NotImplementedError

    def update(self, change: dict | None = None) -> None:
        """Recompute ``images`` from the controls and redraw (the widgets' callback)."""
        self.images = self.render()
        self.draw()

    def draw(self) -> None:
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.figure()
            if fig is not None:
                display(fig)
                plt.close(fig)


class GuidanceControls:
    """Two sliders, the prior rule's scale and the coupling rule's (``bplf.guidance``), each
    from 1 (the model's own density) to its ``limits`` entry (where faces break, from the
    model's evaluation: ``bplf.research.evaluate.safe_ranges``), and a note that says why they end
    there."""

    def __init__(self, guidance: Guidance, limits: dict | None = None, what: str = "samples"):
        limits = limits or {"prior": GUIDANCE_MAX, "coupling": GUIDANCE_MAX}
        self.prior = widgets.FloatSlider(value=min(guidance.prior, limits["prior"]), min=1.0,
                                         max=max(limits["prior"], 1.5), step=0.5,
                                         description="prior guidance", style=WIDE)
        self.coupling = widgets.FloatSlider(value=min(guidance.coupling, limits["coupling"]),
                                            min=1.0, max=max(limits["coupling"], 1.5), step=0.5,
                                            description="coupling guidance", style=WIDE)
        self.note = widgets.HTML(
            f"<i>The guidance sliders stop where the {what} stop being faces in the model's "
            f"evaluation (the Haar cascade finds a face in at least {FACE_RATE_SHARE:g}x as "
            f"many as in real faces{', and the edit keeps the person' if what == 'edits' else ''}"
            f"): prior rule up to {limits['prior']:g}, coupling rule up to "
            f"{limits['coupling']:g}.</i>")

    @property
    def sliders(self) -> list[widgets.FloatSlider]:
        return [self.prior, self.coupling]

    def value(self) -> Guidance:
        return Guidance(prior=float(self.prior.value), coupling=float(self.coupling.value))


class SampleExplorer(_Explorer):
    """Samples of a chosen emotion at a chosen temperature and seed (the seed is off at
    temperature 0, where it changes nothing). With ``guidance`` (a model trained with label
    dropout), guidance sliders that start there and end at ``limits``
    (``GuidanceControls``)."""

    def __init__(self, model: BPLF, n: int = 8, emotion: str = "happy",
                 temperature: float = 0.7, seed: int = 0,
                 guidance: Guidance | float | None = None, limits: dict | None = None):
        self.model, self.n = model.eval(), n
        self.emotion = widgets.Dropdown(options=EMOTIONS, value=emotion, description="emotion",
                                        style=WIDE)
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=1.2, step=0.05,
                                               description="temperature", style=WIDE)
        self.seed = widgets.IntText(value=seed, description="seed", style=WIDE)
        self.guidance = (GuidanceControls(Guidance.of(guidance), limits)
                         if guidance is not None else None)
        self.note = widgets.HTML()
        controls = [self.emotion, self.temperature, self.seed]
        below = (self.note, self.guidance.note) if self.guidance else (self.note,)
        self._watch(*controls, *(self.guidance.sliders if self.guidance else []), below=below)

    @property
    def deterministic(self) -> bool:
        """True at temperature 0: every sample is the same face, whatever the seed."""
        return float(self.temperature.value) == 0.0

    def render(self) -> np.ndarray:
        self.seed.disabled = self.deterministic
        self.note.value = f"<i>{T0_NOTE}</i>" if self.deterministic else ""
        device = next(self.model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(int(self.seed.value))
        guided = {"guidance": self.guidance.value()} if self.guidance else {}
        x = self.model.sample(self.n, EMOTIONS.index(self.emotion.value),
                              float(self.temperature.value), generator=gen, **guided)
        return to_uint8(x)[:, 0].cpu().numpy()

    def title(self) -> str:
        seed = " (the mode: no seed)" if self.deterministic else f", seed {self.seed.value}"
        guided = f", {self.guidance.value().label()}" if self.guidance else ""
        return f"{self.emotion.value}, temperature {self.temperature.value:.2f}{guided}{seed}"

    def figure(self) -> plt.Figure:
        return add_title(face_grid(self.images, ncols=self.n), self.title())


class EditExplorer(_Explorer):
    """Pick a face, a target emotion, an intensity and a method: the face before and after
    editing. ``method`` opens on that method (default: the first the model supports, but the
    slow ``gradient``); with ``guidance`` (a model trained with label dropout), guidance sliders
    for ``reexpress`` (both rules) and ``swap`` (the coupling rule). ``limits``
    (``bplf.research.evaluate.safe_ranges``' edits) ends the intensity slider per method, and the
    guidance sliders, where edits stop being faces or stop keeping the person.
    ``EditExplorer.on_test_faces`` builds the picker (every source present, labelled) and opens
    on a clear, typical face."""

    def __init__(self, model: BPLF, faces: EmotionSet, means: list[torch.Tensor],
                 target: str = "happy", intensity: float = 1.0, face: int = 0,
                 method: str | None = None, guidance: Guidance | float | None = None,
                 limits: dict | None = None):
        if len(faces) == 0:
            raise ValueError("EditExplorer needs at least one face")
        self.model, self.faces, self.means = model.eval(), faces, means
        self.limits = limits or {}
        options = [(face_label(faces, i), i) for i in range(len(faces))]
        self.face = widgets.Dropdown(options=options, value=face, description="face",
                                     style=WIDE)
        self.target = widgets.Dropdown(options=EMOTIONS, value=target, description="target",
                                       style=WIDE)
        self.intensity = widgets.FloatSlider(value=intensity, min=0.0, max=MAX_INTENSITY,
                                             step=0.05, description="intensity", style=WIDE)
        methods = tuple(m for m in model.edit_methods if m != "gradient" or m == method)
        if method is not None and method not in methods:
            raise ValueError(f"method must be one of {methods} for this model, not {method!r}")
        self.method = widgets.ToggleButtons(options=methods, value=method or methods[0])
        self.guidance = (GuidanceControls(Guidance.of(guidance), limits, "edits")
                         if guidance is not None else None)
        controls = [self.face, self.target, self.intensity, self.method]
        self._watch(*controls, *(self.guidance.sliders if self.guidance else []),
                    below=(self.guidance.note,) if self.guidance else ())

    @classmethod
    def on_test_faces(cls, model: BPLF, test: EmotionSet, means: list[torch.Tensor],
                      classifier: torch.nn.Module | None = None, n: int = 60, seed: int = 0,
                      **kwargs) -> EditExplorer:
        """An explorer over ``picker_faces(test, n, seed)`` that opens on its
        ``typical_face`` (the classifier's most confident face of normal contrast, of another
        emotion than the target, so the first edit shows a change)."""
        faces = picker_faces(test, n, seed)
        face = typical_face(faces, classifier, avoid=kwargs.get("target", "happy"))
        return cls(model, faces, means, face=face, **kwargs)

    def render(self) -> np.ndarray:
        i = int(self.face.value)
        x = dequantize(self.faces.images[i : i + 1], centre=True)
        method = self.method.value
        top = self.limits.get("intensity", {}).get(method, MAX_INTENSITY)
        self.intensity.max = max(top, 0.5)
        g = Guidance()
        if self.guidance:
            self.guidance.prior.disabled = method != "reexpress"
            self.guidance.coupling.disabled = method not in ("reexpress", "swap")
            chosen = self.guidance.value()
            g = Guidance(prior=chosen.prior if method == "reexpress" else 1.0,
                         coupling=chosen.coupling if method in ("reexpress", "swap") else 1.0)
        edited = edit_expression(self.model, x, int(self.faces.labels[i]),
                                 EMOTIONS.index(self.target.value), float(self.intensity.value),
                                 method, self.means, g)
        self.applied_guidance = g
        return np.stack([self.faces.images[i], to_uint8(edited)[0, 0].cpu().numpy()])

    def figure(self) -> plt.Figure:
        i = int(self.face.value)
        source = f"{source_name(self.faces.source[i])}, {EMOTIONS[self.faces.labels[i]]}"
        g = self.applied_guidance
        guided = f", {g.label()}" if g.active else ""
        return face_grid(self.images, ncols=2, scale=1.6,
                         titles=[f"input ({source})", f"-> {self.target.value} "
                                 f"x{self.intensity.value:.2f} ({self.method.value}{guided})"])


class AblationExplorer(_Explorer):
    """Val bpd curves of one grid under one budget, against steps or wall time
    (``results``: budget -> grid -> tidy result rows). Every config keeps one colour across
    budgets and grids (``bplf.course.viz.config_colors``)."""

    def __init__(self, results: dict[str, dict[str, pd.DataFrame]], budget: str | None = None,
                 grid: str | None = None, x: str = "step"):
        self.results = results
        budgets = list(results)
        grids = list(dict.fromkeys(g for by_grid in results.values() for g in by_grid))
        self.budget = widgets.ToggleButtons(options=budgets, value=budget or budgets[0],
                                            description="budget", style=WIDE)
        self.grid = widgets.Dropdown(options=grids, value=grid or grids[0], description="grid",
                                     style=WIDE)
        self.axis = widgets.ToggleButtons(options=["step", "wall"], value=x, description="x",
                                          style=WIDE)
        self.colors: dict[str, tuple[float, float, float]] = {}
        self._watch(self.budget, self.grid, self.axis)

    def update(self, change: dict | None = None) -> None:
        """Select the rows of the chosen budget and grid and redraw (the widgets' callback)."""
        empty = pd.DataFrame(columns=["config"])
        self.rows = self.results[self.budget.value].get(self.grid.value, empty)
        self.draw()

    def figure(self) -> plt.Figure | None:
        if self.rows.empty:
            self.colors = {}
            print(f"no results for the {self.grid.value} grid under the {self.budget.value} "
                  f"budget (python -m bplf ablate --grid {self.grid.value} --budget "
                  f"{self.budget.value})")
            return None
        fig = ablation_curves(self.rows, self.axis.value,
                              f"{self.grid.value} ({self.budget.value} budget)")
        self.colors = {line.get_label(): to_rgb(line.get_color()) for line in fig.axes[0].lines}
        return fig
