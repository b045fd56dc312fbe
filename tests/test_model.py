"""The whole model: configs and presets, exact inversion, the likelihood's change of variables,
a density that integrates to one, class conditioning, and state-dict round trips."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from conftest import TINY_MODEL_2STEPS

from bplf import checks
from bplf.checks import density_integral
from bplf.flows import ActNorm, PCALayer
from bplf.model import BPLF, PRESETS, ModelConfig, build_model

VARIANTS = [
    ("bplf", {}),
    ("bplf", {"pca": "global"}),
    ("bplf", {"pca": "patch"}),
    ("bplf", {"pca": "zca", "pca_trainable": True}),
    ("bplf", {"pca": "patch", "pca_trainable": True, "conditioner": "linear"}),
    ("bplf", {"channels": 3, "pca": "patch", "num_classes": 0}),
    ("glow", {}),
    ("realnvp", {"levels": 3, "coupling_depth": 2}),
]

#: the presets of this package's BPLF (the normflows peer is tested in tests/research/test_peers.py)
OURS = sorted(p for p, c in PRESETS.items() if c.implementation == "bplf")


def tiny_model(preset: str, faces, dtype=torch.float32, n_init: int = 1024, **overrides) -> BPLF:
    """A tiny model of ``preset``, initialised on face-like images (enough of them for PCA)."""
    cfg = {**TINY_MODEL_2STEPS, **overrides}
    model = build_model(preset, **cfg).to(dtype)
    model.initialize(faces(n_init, cfg["image_size"], model.config.channels).to(dtype))
    return model


# -- configuration -------------------------------------------------------------------------------
def test_presets_and_config_validation():
    assert PRESETS["bplf"] == ModelConfig()
    glow, realnvp = PRESETS["glow"], PRESETS["realnvp"]
    assert (glow.conditioner, glow.kernel_size, glow.hidden_kernel_size, glow.pca,
            glow.permutation) == ("conv", 3, 1, "none", "invconv")
    assert realnvp.permutation == "reverse" and realnvp.pca == "none"
    cfg = ModelConfig(levels=2, pca="patch")
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="divisible by 2\\*\\*levels"):
        ModelConfig(image_size=20, levels=3)
    for field, bad in [("pca", "local"), ("conditioner", "mlp"), ("permutation", "random"),
                       ("coupling_depth", 0)]:
        with pytest.raises(ValueError, match=field):
            ModelConfig(**{field: bad})
    with pytest.raises(ValueError, match="implementation"):
        ModelConfig(implementation="flax")
    with pytest.raises(ValueError, match="unknown ModelConfig fields \\['depth'\\]"):
        ModelConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="valid: \\['bplf', 'glow', 'glow-normflows', 'real"):
        build_model("nice")
    with pytest.raises(ValueError, match="hidden_channel"):
        build_model("glow", hidden_channel=8)
    assert build_model("glow", image_size=16, levels=2).config.hidden_kernel_size == 1


@pytest.mark.parametrize("preset", OURS)
@pytest.mark.parametrize("channels", [1, 3])
def test_presets_build_at_48(preset, channels):
    model = build_model(preset, channels=channels)
    assert model.config.image_size == 48 and model.num_parameters() > 0
    shapes = model.latent_shapes()
    assert len(shapes) == 3 and sum(math.prod(s) for s in shapes) == channels * 48 * 48
    if PRESETS[preset].pca == "patch":  # bplf: whitening of 2x2 patches after the squeeze
        assert isinstance(model.levels[0].pca, PCALayer) and model.levels[0].pca.dim == channels * 4
    assert build_model(preset, channels=channels, pca="zca").pca.dim == channels * 48 * 48


@pytest.mark.parametrize("preset", OURS)
@pytest.mark.parametrize("channels", [1, 3])
def test_sample_at_48(preset, channels, faces, device):
    overrides = dict(steps_per_level=1, hidden_channels=8, channels=channels)
    if preset == "bplf" and channels == 3:
        overrides["pca"] = "patch"  # a 6912-dim eigendecomposition is too slow for a unit test
    model = build_model(preset, **overrides).to(device)
    x = faces(64, 48, channels).to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 64 images cannot fit a full-rank 2304-dim PCA
        model.initialize(x)
    for y in (None, 3, torch.arange(4, device=device) % 7):
        xs = model.sample(4, y=y, temperature=0.7)
        assert xs.shape == (4, channels, 48, 48) and torch.isfinite(xs).all()
    lp = model.log_prob(x[:4], torch.zeros(4, dtype=torch.long, device=device))
    assert lp.shape == (4,) and torch.isfinite(lp).all()


# -- invertibility -------------------------------------------------------------------------------
@pytest.mark.parametrize(("preset", "overrides"), VARIANTS)
def test_encode_decode_exact_after_perturbation(preset, overrides, faces, perturb, device):
    torch.manual_seed(0)
    model = tiny_model(preset, faces, **overrides)
    perturb(model)
    model.to(device)
    c = model.config.channels
    for x in (torch.rand(16, c, 8, 8) - 0.5, faces(16, 8, c, seed=1)):
        x = x.to(device)
        with torch.no_grad():
            zs = model.encode(x)
            err = float((model.decode(zs) - x).abs().max())
        assert [tuple(z.shape[1:]) for z in zs] == model.latent_shapes()
        assert err < 1e-4, f"{preset} {overrides}: round trip error {err}"


def test_decode_samples_missing_latents(faces):
    model = tiny_model("bplf", faces)
    zs = model.encode(faces(3, 8, seed=2))
    x1 = model.decode([None, zs[1]], temperature=0.0)
    x2 = model.decode([None, zs[1]], temperature=0.0)
    assert torch.equal(x1, x2) and not torch.allclose(x1, model.decode(zs))
    with pytest.raises(ValueError, match="expected 2 latents"):
        model.decode(zs[1:])


# -- the likelihood ------------------------------------------------------------------------------
@pytest.mark.parametrize(("preset", "overrides"), [
    ("bplf", {"pca": "zca"}), ("bplf", {"pca": "patch", "pca_trainable": True}),
    ("bplf", {"pca": "global", "pca_trainable": True}), ("glow", {}), ("realnvp", {}),
])
def test_log_prob_is_change_of_variables(preset, overrides, faces, perturb, autograd_logdet):
    """log p(x) = log p(z) + log|det dz/dx|, with dz/dx the Jacobian of the whole encode map
    and log p(z) the priors (computed in the inverse direction): every logdet and prior summed."""
    torch.manual_seed(0)
    model = tiny_model(preset, faces, torch.float64, image_size=4, **overrides)
    perturb(model, scale=0.1)
    x = faces(3, 4, seed=4).double()
    y = torch.tensor([0, 3, 6])

    def encode_flat(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.reshape(len(v), -1) for z in model.encode(v)], 1)

    with torch.no_grad():
        lp = model.log_prob(x, y)
        prior = model.prior_log_prob(model.encode(x), y)
    expected = prior + autograd_logdet(encode_flat, x)
    torch.testing.assert_close(lp, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("levels", "overrides"), [(1, {"pca": "zca"}), (2, {"pca": "patch"}),
                                                   (2, {"pca": "none", "conditioner": "conv"})])
def test_density_integrates_to_one(levels, overrides, faces, perturb):
    torch.manual_seed(0)
    model = tiny_model("bplf", faces, torch.float64, image_size=4, levels=levels,
                       steps_per_level=2, num_classes=0, **overrides)
    perturb(model)
    with torch.no_grad():  # make sure the scale layers contribute non-trivial log-determinants
        for m in model.modules():
            if isinstance(m, ActNorm):
                m.log_scale.add_(0.3)
    estimate, se = density_integral(model)
    assert se < 0.05, (estimate, se)
    assert abs(estimate - 1) < 3 * se + 1e-3, (estimate, se)


# -- conditioning, init state --------------------------------------------------------------------
def test_class_conditioning(faces, perturb):
    model = tiny_model("bplf", faces)
    x = faces(4, 8, seed=6)
    same = [model.log_prob(x, torch.full((4,), k)) for k in range(7)]
    assert all(torch.allclose(same[0], s) for s in same)  # zero-init class priors
    perturb(model.top_prior, scale=0.2)
    lp = torch.stack([model.log_prob(x, torch.full((4,), k)) for k in range(7)])
    assert (lp[1:] - lp[0]).abs().min() > 1e-3
    torch.testing.assert_close(model.log_prob(x, 2), lp[2])
    torch.testing.assert_close(model.log_prob_classes(x), lp.T)  # one encode, K top priors
    mean, log_std = model.top_prior.params(torch.tensor([2, 5]))
    assert mean.shape == (2, *model.latent_shapes()[-1])
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(model.sample(3, 2, 0.7, generator=g1), model.sample(3, 2, 0.7, generator=g2))
    with pytest.raises(ValueError, match="expected 3 labels"):
        model.sample(3, torch.tensor([0, 1]))
    uncond = tiny_model("glow", faces, num_classes=0)
    assert uncond.log_prob(x).shape == (4,)
    torch.testing.assert_close(uncond.log_prob_classes(x), uncond.log_prob(x)[:, None])
    with pytest.raises(ValueError, match="unconditional"):
        uncond.log_prob(x, torch.zeros(4, dtype=torch.long))


def test_initialize_and_state_dict_round_trip(faces, perturb):
    model = tiny_model("bplf", faces, pca="zca")
    x = faces(1024, 8)
    first = model.levels[0].steps[0].actnorm
    with torch.no_grad():  # the first ActNorm sees the PCA output: unit variance per channel
        h, _ = model.levels[0].squeeze(model.pca(x)[0])
        a, _ = first(h)
    torch.testing.assert_close(a.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-3, rtol=0)
    perturb(model)
    fresh = BPLF(model.config)
    assert not fresh.pca.fitted and not fresh.levels[0].steps[0].actnorm.initialized
    fresh.load_state_dict(model.state_dict())
    assert fresh.pca.fitted
    assert all(m.initialized for m in fresh.modules() if isinstance(m, ActNorm))
    batch = faces(8, 8, seed=7) * 3  # a batch that would give different ActNorm statistics
    with torch.no_grad():
        torch.testing.assert_close(fresh.log_prob(batch, 1), model.log_prob(batch, 1), rtol=0,
                                   atol=0)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 model.state_dict().values(), strict=True))
    with pytest.raises(RuntimeError, match="not fitted"):
        BPLF(model.config).log_prob(batch)


def test_initialize_fits_pca_on_separate_images(faces):
    model = build_model("bplf", **TINY_MODEL_2STEPS, pca="zca")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.initialize(faces(32, 8), pca_x=faces(2048, 8, seed=9))
    assert model.pca.num_regularized == 0
    with pytest.warns(UserWarning, match="only 32 samples"):
        build_model("bplf", **TINY_MODEL_2STEPS, pca="zca").initialize(faces(32, 8))


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_layer_round_trips_find_the_layer_that_loses_the_input(faces, floor):
    """A coupling driven to a tiny scale and a large shift (as on the faces the first shipped
    model could not invert) is the layer ``layer_round_trips`` names; the floor keeps it exact."""
    model = build_model("bplf", image_size=8, levels=2, steps_per_level=2, hidden_channels=8,
                        pca="none", coupling_min_scale=floor)
    x = faces(6)
    model.initialize(x)
    coupling = model.levels[0].steps[1].coupling
    with torch.no_grad():
        coupling.conv_branch[-1].bias.copy_(torch.tensor([-22.0, -22.0, 10.0, 10.0]))
    rows = checks.layer_round_trips(model, x)
    assert len(rows) == 2 * 2 * 3  # ActNorm, 1x1 convolution and coupling per step
    worst = max(rows, key=lambda r: r["local_error"])
    if floor == 0:
        assert worst["layer"] == "levels.0.steps.layers.1.coupling"
        assert worst["min_scale"] < 1e-8 and worst["max_shift"] == pytest.approx(10, abs=1e-3)
        assert worst["local_error"] > 0.1
    else:
        assert min(r.get("min_scale", 1.0) for r in rows) == pytest.approx(floor)
        assert worst["local_error"] < 1e-5
