"""Expression editing, interpolation and the widget explorers on a small 48x48 model."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch

from bplf.course.viz import edit_grid, edit_methods_grid
from bplf.course.widgets import EditExplorer, SampleExplorer
from bplf.data import EMOTIONS
from bplf.editing import (
    ascend_own_classifier,
    decode_edit,
    edit_expression,
    edit_latents,
    encode_for_edit,
    interpolate,
    latent_means,
    sample_faces,
)
from bplf.guidance import Guidance
from bplf.likelihood import dequantize
from bplf.model import DensityModel

matplotlib.use("Agg")


def test_latent_means_are_per_emotion_averages(small_model, synthetic_es, small_means):
    assert [tuple(m.shape) for m in small_means] == [(7, *s) for s in small_model.latent_shapes()]
    sad = synthetic_es.select(split="train", emotion="sad").subsample(40)
    zs = small_model.encode(dequantize(sad.images, generator=torch.Generator().manual_seed(0)))
    for m, z in zip(small_means, zs, strict=True):
        torch.testing.assert_close(m[EMOTIONS.index("sad")], z.mean(0), atol=1e-5, rtol=1e-4)
    assert (small_means[-1][3] - small_means[-1][4]).abs().max() > 1e-3  # happy and sad differ


@pytest.mark.parametrize("method", ["mean", "prior", "reexpress", "gradient"])
def test_intensity_zero_reproduces_the_face(small_model, synthetic_es, small_means, method):
    faces = synthetic_es.select(split="test").subsample(6)
    x = dequantize(faces.images, centre=True)
    same = edit_expression(small_model, x, torch.as_tensor(faces.labels), 3, 0.0, method,
                           small_means)
    assert (same - x).abs().max() < 1e-4
    moved = edit_expression(small_model, x, torch.as_tensor(faces.labels), 3, 1.0, method,
                            small_means)
    assert (moved - x).abs().max() > 1e-2


def test_reexpress_places_the_noise_under_the_target_prior(guided_model, synthetic_es):
    """At intensity 1 a re-expressed face has the source face's standardised noise under the
    target's (guided) priors: encoding it with the target gives that noise back."""
    faces = synthetic_es.select(split="test").subsample(4, seed=2)
    x = dequantize(faces.images, centre=True)
    y = torch.as_tensor(faces.labels)
    target = (y + 3) % 7
    with torch.no_grad():
        eps = guided_model.encode_noise(x, y)
        out = edit_expression(guided_model, x, y, target, 1.0, "reexpress")
        torch.testing.assert_close(guided_model.encode_noise(out, target)[-1], eps[-1],
                                   atol=1e-3, rtol=1e-3)
    guided = edit_expression(guided_model, x, y, target, 1.0, "reexpress",
                             guidance=Guidance(prior=3, coupling=2))
    assert (guided - out).abs().max() > 1e-3
    assert guided_model.edit_methods[-2:] == ("swap", "gradient")
    assert DensityModel().edit_methods == ()  # the peers: none


def test_gradient_edits_until_the_model_prefers_the_target(small_model, synthetic_es):
    """The gradient method raises the model's own log p(target | x) and stops moving a face
    once the model prefers the target."""
    faces = synthetic_es.select(split="test").subsample(6, seed=3)
    x = dequantize(faces.images, centre=True)
    source = torch.as_tensor(faces.labels)
    target = (source + 1) % 7
    zs = small_model.encode(x, source)

    def log_posterior(z):
        with torch.no_grad():
            lp = small_model.log_prob_classes(small_model.decode(z, source))
        return lp[torch.arange(len(x)), target] - torch.logsumexp(lp, 1), lp.argmax(1)

    before, first_choice = log_posterior(zs)
    moved = ascend_own_classifier(small_model, zs, source, target, steps=30, lr=0.1)
    after, preferred = log_posterior(moved)
    started_elsewhere = first_choice != target
    assert started_elsewhere.sum() >= 4
    assert (after[started_elsewhere] > before[started_elsewhere]).all()
    assert (preferred == target).float().mean() >= 0.5
    # faces the model already assigns to their target do not move
    kept = ascend_own_classifier(small_model, zs, source, first_choice)
    assert all(torch.equal(a, b) for a, b in zip(kept, zs, strict=True))


def test_edits_move_latents_as_defined(small_model, small_means):
    zs = [torch.randn(2, *s) for s in small_model.latent_shapes()]
    out = edit_latents(small_model, zs, 4, 3, 0.5, "mean", small_means)
    for z, o, m in zip(zs, out, small_means, strict=True):
        torch.testing.assert_close(o - z, 0.5 * (m[3] - m[4]).expand_as(z))
    mu_s, _ = small_model.top_prior.params(torch.tensor([4, 4]))
    mu_t, _ = small_model.top_prior.params(torch.tensor([3, 3]))
    moved = edit_latents(small_model, [*zs[:-1], mu_s.clone()], 4, 3, 1.0, "prior")
    torch.testing.assert_close(moved[-1], mu_t)  # the source mean lands on the target mean
    assert all(torch.equal(a, b) for a, b in zip(moved[:-1], zs[:-1], strict=True))


def test_bad_edit_arguments(small_model, small_means):
    x = torch.zeros(1, 1, 48, 48)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        edit_expression(small_model, x, 0, 1, 3.5, "mean", small_means)
    with pytest.raises(ValueError, match="guidance applies to method='swap' and 'reexpress'"):
        edit_expression(small_model, x, 0, 1, 1.0, "mean", small_means, Guidance(prior=2))
    with pytest.raises(ValueError, match="method must be one of"):
        edit_expression(small_model, x, 0, 1, 1.0, "nearest", small_means)
    with pytest.raises(ValueError, match="needs the latent means"):
        edit_expression(small_model, x, 0, 1, 1.0, "mean")


def test_interpolation_ends_at_both_faces(small_model, synthetic_es):
    faces = dequantize(synthetic_es.select(split="test").subsample(2).images, centre=True)
    path = interpolate(small_model, faces[0], faces[1], steps=5)
    assert path.shape == (5, 1, 48, 48)
    assert (path[0] - faces[0]).abs().max() < 1e-4 and (path[-1] - faces[1]).abs().max() < 1e-4
    assert (path[2] - faces[0]).abs().max() > 1e-2


def test_edit_grid_draws_every_target(small_model, synthetic_es, small_means):
    faces = synthetic_es.select(split="test").subsample(2)
    fig = edit_grid(small_model, faces.images, faces.labels, small_means, row_labels=["a", "b"])
    assert len(fig.axes) == 2 * 8 and fig.axes[1].get_title() == "angry"


def test_edit_methods_grid_gives_each_method_its_rows(guided_model, synthetic_es):
    """A row per method and intensity: the input, then the seven targets (every method but the
    slow gradient; swap and reexpress guided), or the methods asked for."""
    faces = synthetic_es.select(split="test").subsample(1, seed=0)
    means = latent_means(guided_model, synthetic_es, per_emotion=20)
    fig = edit_methods_grid(guided_model, faces.images[0], int(faces.labels[0]), means,
                            intensities=(0.0, 1.0), guidance=4.0)
    assert len(fig.axes) == 4 * 2 * (1 + 7)
    assert [ax.get_title() for ax in fig.axes[:8]] == ["input", *EMOTIONS]
    rows = [fig.axes[8 * r].get_ylabel() for r in range(8)]
    assert rows[0] == "mean\nx0" and rows[4] == "reexpress (couplings 4)\nx0"
    assert rows[6] == "swap (couplings 4)\nx0" and rows[7] == "swap (couplings 4)\nx1"
    drawn = [np.asarray(ax.get_images()[0].get_array()) for ax in fig.axes]
    # intensity 0 gives the input back under every method; intensity 1 changes it
    same = []
    for r in range(8):
        row = drawn[8 * r: 8 * r + 8]
        assert (row[0] == faces.images[0]).all(), "each row starts with the input"
        same.append(all((a == faces.images[0]).all() for a in row[1:]))
    assert all(same[0::2]) and not all(same[1::2]), same
    picked = edit_methods_grid(guided_model, faces.images[0], int(faces.labels[0]), means,
                               methods=[("reexpress", Guidance(prior=3))], intensities=(1.0,))
    assert len(picked.axes) == 8
    assert picked.axes[0].get_ylabel() == "reexpress (prior 3)\nx1"


def test_sample_explorer_callbacks(small_model):
    ex = SampleExplorer(small_model, n=4, emotion="happy", temperature=0.7, seed=0)
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


def test_edit_explorer_callbacks(small_model, synthetic_es, small_means):
    faces = synthetic_es.select(split="test").subsample(5)
    ex = EditExplorer(small_model, faces, small_means, target="surprise", intensity=0.0)
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
        EditExplorer(small_model, faces.select(split="train"), small_means)


def test_a_noise_trained_model_samples_denoised_by_default(small_model, synthetic_es):
    """``BPLF.denoises``: without ``denoise``, a model trained on noisy faces takes the Tweedie
    step after sampling, and a clean-face model never does; edits take it only when asked (at
    intensity 0 they give the photo back)."""
    x = dequantize(synthetic_es.select(split="test").subsample(4, seed=0).images, centre=True)
    source, target = torch.zeros(4, dtype=torch.long), torch.full((4,), 3)

    def draw(**denoise):
        return small_model.sample(4, 3, 0.7, torch.Generator().manual_seed(1), **denoise)

    clean_default, clean_raw = draw(), draw(denoise=False)
    small_model.noise_std = 0.05
    try:
        default, raw, denoised = draw(), draw(denoise=False), draw(denoise=True)
        faces, _ = sample_faces(small_model, 1, 0.7, seed=2)
        faces_denoised, _ = sample_faces(small_model, 1, 0.7, seed=2, denoise=True)
        start = encode_for_edit(small_model, x, source, "prior")
        unchanged = decode_edit(small_model, start, target, 0.0)
        edit, edit_denoised = (decode_edit(small_model, start, target, 1.0, denoise=d)
                               for d in (False, True))
    finally:
        small_model.noise_std = 0.0
    assert torch.equal(default, denoised) and not torch.allclose(default, raw)
    assert torch.equal(clean_default, clean_raw) and torch.equal(clean_default, raw)
    assert torch.equal(faces, faces_denoised)
    assert (unchanged - x).abs().max() < 1e-4 and not torch.allclose(edit, edit_denoised)
