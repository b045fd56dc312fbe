"""bplf.course.viz: the side-by-side of the same draws as drawn and denoised."""

from __future__ import annotations

import matplotlib
import numpy as np

from bplf.course.viz import denoised_side_by_side
from bplf.editing import sample_faces

matplotlib.use("Agg")


def test_the_two_halves_are_the_same_draws_before_and_after_denoising(small_model):
    small_model.noise_std = 0.05
    try:
        fig = denoised_side_by_side(small_model, per_emotion=2, temperature=0.7, seed=3)
        raw, _ = sample_faces(small_model, 2, 0.7, 3, denoise=False)
        clean, _ = sample_faces(small_model, 2, 0.7, 3, denoise=True)
    finally:
        small_model.noise_std = 0.0
    axes = np.array(fig.axes).reshape(7, 4)
    assert [ax.get_title() for ax in axes[0]] == ["as drawn"] * 2 + ["denoised"] * 2
    shown = np.stack([ax.images[0].get_array() for ax in axes[1]])  # the second emotion's row
    np.testing.assert_array_equal(shown[:2], raw[2:4].numpy())
    np.testing.assert_array_equal(shown[2:], clean[2:4].numpy())
    # the step moves the faces, but only a little: the same draws
    diff = np.abs(raw.numpy().astype(int) - clean.numpy().astype(int))
    assert 0 < diff.mean() < 20
