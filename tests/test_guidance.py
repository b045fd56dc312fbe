"""bplf.guidance: the Guidance object and the Gaussian rule of the priors, and the model's
guided sampling and decoding from standardised noise."""

from __future__ import annotations

import math

import pytest
import torch

from bplf.flows.prior import gaussian_log_prob
from bplf.guidance import Guidance, gaussian_guidance


def test_guidance_parses_numbers_dicts_and_labels():
    assert Guidance.of(8.0) == Guidance(coupling=8.0)  # a number: the coupling rule, as before
    assert Guidance.of(None) == Guidance() and not Guidance().active
    g = Guidance(prior=3, coupling=2, levels=[2], schedule="linear")
    assert Guidance.of(g.to_dict()) == g and g.levels == (2,)
    assert g.label() == "prior 3 · couplings 2 · levels 2 · linear"
    assert Guidance().label() == "unguided"
    with pytest.raises(ValueError, match=">= 1"):
        Guidance(prior=0.5)
    with pytest.raises(ValueError, match="schedule"):
        Guidance(schedule="cosine")


def test_guidance_scales_per_level():
    g = Guidance(prior=5, coupling=3)
    assert [g.scales(i, 3) for i in range(3)] == [(5, 3)] * 3
    top_only = Guidance(prior=5, levels=(2,))
    assert [top_only.scales(i, 3) for i in range(3)] == [(1, 1), (1, 1), (5, 1)]
    # linear: nothing at the coarsest level (decoded first), the full scale at the finest
    ramp = Guidance(prior=5, coupling=3, schedule="linear")
    assert [ramp.scales(i, 3) for i in range(3)] == [(5, 3), (3, 2), (1, 1)]


def test_gaussian_rule_is_the_renormalised_product():
    """p_c^(1+w) / p_u^w, renormalised, is the Gaussian the rule gives (checked on a grid)."""
    mc, lc, mu, lu = (torch.tensor([v], dtype=torch.float64) for v in (0.8, math.log(0.7),
                                                                        -0.3, math.log(1.2)))
    scale = 3.0
    w = scale - 1
    mean, log_std = gaussian_guidance(mc, lc, mu, lu, scale)
    z = torch.linspace(-6, 6, 20001, dtype=torch.float64)[:, None, None]
    logp = (1 + w) * gaussian_log_prob(z, mc, lc) - w * gaussian_log_prob(z, mu, lu)
    p = torch.softmax(logp, 0)
    grid_mean = (p * z.flatten()).sum()
    grid_std = (p * (z.flatten() - grid_mean) ** 2).sum().sqrt()
    assert float(mean) == pytest.approx(float(grid_mean), abs=1e-6)
    assert float(log_std.exp()) == pytest.approx(float(grid_std), abs=1e-6)
    # guidance 1 is the plain conditional; a conditional wider than the null is clipped (r=1),
    # so its std stays s_c and the mean moves by w (mu_c - mu_u)
    assert gaussian_guidance(mc, lc, mu, lu, 1.0) == (mc, lc)
    wide_mean, wide_log_std = gaussian_guidance(mc, lu + 1, mu, lu, scale)
    assert float(wide_log_std) == pytest.approx(float(lu + 1))
    assert float(wide_mean) == pytest.approx(0.8 + w * (0.8 + 0.3))


def test_guided_samples_draw_the_top_latent_from_the_guided_prior(guided_model):
    """At temperature 0 a sample's top latent is its prior's mean: the plain conditional's at
    scale 1, the guided Gaussian's above (further from the null label's mean)."""
    top = guided_model.top_prior
    with torch.no_grad():
        top.class_mean.add_(0.5 * torch.randn_like(top.class_mean))
        top.class_log_std.add_(0.2 * torch.randn_like(top.class_log_std))
    try:
        tops = {}
        for scale in (1.0, 4.0):
            x = guided_model.sample(2, y=3, temperature=0.0,
                                    generator=torch.Generator().manual_seed(0),
                                    guidance=Guidance(prior=scale))
            with torch.no_grad():
                tops[scale] = guided_model.encode(x, 3)[-1]
        mc, lc = top.params(3)
        mu, lu = top.params(None)
        torch.testing.assert_close(tops[1.0], mc.expand_as(tops[1.0]), atol=1e-4, rtol=1e-4)
        guided_mean, _ = gaussian_guidance(mc, lc, mu, lu, 4.0)
        torch.testing.assert_close(tops[4.0], guided_mean.expand_as(tops[4.0]), atol=1e-4,
                                   rtol=1e-4)
        assert (guided_mean - mu).norm() > (mc - mu).norm()
    finally:
        with torch.no_grad():
            top.class_mean.zero_()
            top.class_log_std.zero_()


@pytest.mark.parametrize("fixture", ["small_model", "guided_model"])
def test_noise_round_trip_and_sampling_from_noise(request, fixture, synthetic_es):
    """decode_noise inverts encode_noise; sampling is decoding temperature-scaled noise."""
    from bplf.likelihood import dequantize

    model = request.getfixturevalue(fixture)
    faces = synthetic_es.select(split="test").subsample(5)
    x = dequantize(faces.images, centre=True)
    y = torch.as_tensor(faces.labels)
    with torch.no_grad():
        eps = model.encode_noise(x, y)
        back = model.decode_noise(eps, y)
        assert (back - x).abs().max() < 1e-4
        # the same face, re-expressed at intensity 0, is the face itself at any guidance
        same = model.decode_noise(eps, (y + 2) % 7, Guidance(prior=4), source=y, intensity=0.0)
        assert (same - x).abs().max() < 1e-4
        moved = model.decode_noise(eps, (y + 2) % 7, Guidance(prior=4), source=y, intensity=1.0)
        assert (moved - x).abs().max() > 1e-2
        # the top noise of a sample at temperature T drawn with a seed is T * N(0, 1)
        gen = torch.Generator().manual_seed(3)
        sample = model.sample(5, y=y, temperature=0.5, generator=gen)
        eps_sample = model.encode_noise(sample, y)
        gen = torch.Generator().manual_seed(3)
        expected_top = 0.5 * torch.randn((5, *model.latent_shapes()[-1]), generator=gen)
        torch.testing.assert_close(eps_sample[-1], expected_top, atol=2e-3, rtol=1e-3)
