"""Expression editing, interpolation and the widget explorers on a small 48x48 model."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from bplf.data import EMOTIONS
from bplf.editing import edit_expression, edit_latents, interpolate
from bplf.likelihood import dequantize
from bplf.viz import edit_grid
from bplf.widgets import EditExplorer, SampleExplorer

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def es(synthetic_es):
    return synthetic_es


@pytest.fixture(scope="module")
def model(small_model):
    return small_model


@pytest.fixture(scope="module")
def means(small_means):
    return small_means


def test_latent_means_are_per_emotion_averages(model, es, means):
    assert [tuple(m.shape) for m in means] == [(7, *s) for s in model.latent_shapes()]
    sad = es.select(split="train", emotion="sad").subsample(40)
    zs = model.encode(dequantize(sad.images, generator=torch.Generator().manual_seed(0)))
    for m, z in zip(means, zs, strict=True):
        torch.testing.assert_close(m[EMOTIONS.index("sad")], z.mean(0), atol=1e-5, rtol=1e-4)
    assert (means[-1][3] - means[-1][4]).abs().max() > 1e-3  # happy and sad differ


@pytest.mark.parametrize("method", ["mean", "prior"])
def test_intensity_zero_reproduces_the_face(model, es, means, method):
    faces = es.select(split="test").subsample(6)
    x = dequantize(faces.images, centre=True)
    same = edit_expression(model, x, torch.as_tensor(faces.labels), 3, 0.0, method, means)
    assert (same - x).abs().max() < 1e-4
    moved = edit_expression(model, x, torch.as_tensor(faces.labels), 3, 1.0, method, means)
    assert (moved - x).abs().max() > 1e-2


def test_edits_move_latents_as_defined(model, means):
    zs = [torch.randn(2, *s) for s in model.latent_shapes()]
    out = edit_latents(model, zs, 4, 3, 0.5, "mean", means)
    for z, o, m in zip(zs, out, means, strict=True):
        torch.testing.assert_close(o - z, 0.5 * (m[3] - m[4]).expand_as(z))
    mu_s, _ = model.top_prior.params(torch.tensor([4, 4]))
    mu_t, _ = model.top_prior.params(torch.tensor([3, 3]))
    moved = edit_latents(model, [*zs[:-1], mu_s.clone()], 4, 3, 1.0, "prior")
    torch.testing.assert_close(moved[-1], mu_t)  # the source mean lands on the target mean
    assert all(torch.equal(a, b) for a, b in zip(moved[:-1], zs[:-1], strict=True))


def test_bad_edit_arguments(model, means):
    x = torch.zeros(1, 1, 48, 48)
    with pytest.raises(ValueError, match=r"\[0, 1.5\]"):
        edit_expression(model, x, 0, 1, 2.0, "mean", means)
    with pytest.raises(ValueError, match="method must be one of"):
        edit_expression(model, x, 0, 1, 1.0, "nearest", means)
    with pytest.raises(ValueError, match="needs the latent means"):
        edit_expression(model, x, 0, 1, 1.0, "mean")


def test_interpolation_ends_at_both_faces(model, es):
    faces = dequantize(es.select(split="test").subsample(2).images, centre=True)
    path = interpolate(model, faces[0], faces[1], steps=5)
    assert path.shape == (5, 1, 48, 48)
    assert (path[0] - faces[0]).abs().max() < 1e-4 and (path[-1] - faces[1]).abs().max() < 1e-4
    assert (path[2] - faces[0]).abs().max() > 1e-2


def test_edit_grid_draws_every_target(model, es, means):
    faces = es.select(split="test").subsample(2)
    fig = edit_grid(model, faces.images, faces.labels, means, row_labels=["a", "b"])
    assert len(fig.axes) == 2 * 8 and fig.axes[1].get_title() == "angry"


def test_sample_explorer_callbacks(model):
    ex = SampleExplorer(model, n=4, emotion="happy", temperature=0.7, seed=0)
    first = ex.images.copy()
    assert first.shape == (4, 48, 48) and first.dtype.name == "uint8"
    ex.seed.value = 1
    assert not (ex.images == first).all()
    ex.emotion.value = "sad"
    sad = ex.images.copy()
    ex.seed.value = 0
    assert not (ex.images == sad).all()
    ex.temperature.value = 0.0  # temperature 0: every sample is the emotion's mode
    assert (ex.images == ex.images[0]).all()


def test_edit_explorer_callbacks(model, es, means):
    faces = es.select(split="test").subsample(5)
    ex = EditExplorer(model, faces, means, target="surprise", intensity=0.0)
    assert (ex.images[1] == ex.images[0]).all()  # intensity 0: the input face, unchanged
    assert (ex.images[0] == faces.images[0]).all()
    ex.intensity.value = 1.0
    full = ex.images[1].copy()
    assert not (full == faces.images[0]).all()
    ex.target.value = "angry"
    assert not (ex.images[1] == full).all()
    ex.face.value = 3
    assert (ex.images[0] == faces.images[3]).all()
    ex.method.value = "prior"
    assert ex.images.shape == (2, 48, 48)
    with pytest.raises(ValueError, match="at least one face"):
        EditExplorer(model, faces.select(split="train"), means)
