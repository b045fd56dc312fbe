"""Interactive explorers for notebook 05: class-conditional samples and expression editing.

Each explorer keeps its controls as attributes (``emotion``, ``temperature``, ...), redraws on
every change, and keeps the last images it drew in ``images`` (uint8), so a test can set a
control's value and check what was drawn. ``widget`` is the box to display.
"""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from bplf.data import EMOTIONS, EmotionSet
from bplf.editing import METHODS, edit_expression
from bplf.likelihood import dequantize, to_uint8
from bplf.model import BPLF
from bplf.viz import face_grid


class _Explorer:
    images: np.ndarray

    def _watch(self, *controls: widgets.ValueWidget) -> None:
        self.output = widgets.Output()
        for control in controls:
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox(list(controls)), self.output])
        self.update()

    def render(self) -> np.ndarray:
        raise NotImplementedError

    def figure(self) -> plt.Figure:
        raise NotImplementedError

    def update(self, change: dict | None = None) -> None:
        """Recompute ``images`` from the controls and redraw (the widgets' callback)."""
        self.images = self.render()
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.figure()
            display(fig)
            plt.close(fig)


class SampleExplorer(_Explorer):
    """Samples of a chosen emotion at a chosen temperature and seed."""

    def __init__(self, model: BPLF, n: int = 8, emotion: str = "happy",
                 temperature: float = 0.7, seed: int = 0):
        self.model, self.n = model.eval(), n
        self.emotion = widgets.Dropdown(options=EMOTIONS, value=emotion, description="emotion")
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=1.2, step=0.05,
                                               description="temperature")
        self.seed = widgets.IntText(value=seed, description="seed")
        self._watch(self.emotion, self.temperature, self.seed)

    def render(self) -> np.ndarray:
        device = next(self.model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(int(self.seed.value))
        x = self.model.sample(self.n, EMOTIONS.index(self.emotion.value),
                              float(self.temperature.value), generator=gen)
        return to_uint8(x)[:, 0].cpu().numpy()

    def figure(self) -> plt.Figure:
        fig = face_grid(self.images, ncols=self.n)
        fig.suptitle(f"{self.emotion.value}, temperature {self.temperature.value:.2f}, "
                     f"seed {self.seed.value}", fontsize=9, y=1.05)
        return fig


class EditExplorer(_Explorer):
    """Pick a face, a target emotion and an intensity: the face before and after editing."""

    def __init__(self, model: BPLF, faces: EmotionSet, means: list[torch.Tensor],
                 target: str = "happy", intensity: float = 1.0):
        if len(faces) == 0:
            raise ValueError("EditExplorer needs at least one face")
        self.model, self.faces, self.means = model.eval(), faces, means
        options = [(f"{i}: {faces.source[i]}, {EMOTIONS[faces.labels[i]]}", i)
                   for i in range(len(faces))]
        self.face = widgets.Dropdown(options=options, value=0, description="face")
        self.target = widgets.Dropdown(options=EMOTIONS, value=target, description="target")
        self.intensity = widgets.FloatSlider(value=intensity, min=0.0, max=1.5, step=0.05,
                                             description="intensity")
        self.method = widgets.ToggleButtons(options=METHODS, value="mean")
        self._watch(self.face, self.target, self.intensity, self.method)

    def render(self) -> np.ndarray:
        i = int(self.face.value)
        x = dequantize(self.faces.images[i : i + 1], centre=True)
        edited = edit_expression(self.model, x, int(self.faces.labels[i]),
                                 EMOTIONS.index(self.target.value), float(self.intensity.value),
                                 self.method.value, self.means)
        return np.stack([self.faces.images[i], to_uint8(edited)[0, 0].cpu().numpy()])

    def figure(self) -> plt.Figure:
        source = EMOTIONS[self.faces.labels[int(self.face.value)]]
        return face_grid(self.images, ncols=2, scale=1.6,
                         titles=[f"input ({source})", f"-> {self.target.value} "
                                 f"x{self.intensity.value:.2f}"])
