"""Every flow layer: exact inverse, log-determinant equal to autograd's, and its own promises."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from bplf.checks import round_trip_error
from bplf.flows import (
    ActNorm,
    BiParallelAffineCoupling,
    ClassConditionalPrior,
    FlowSequence,
    InvConv1x1,
    PCALayer,
    Permutation,
    Split,
    Squeeze,
    gaussian_log_prob,
)
from bplf.model import MIN_SCALE, FlowStep, ModelConfig

C, S = 4, 4  # layers inside the flow see squeezed 8x8 images: (N, 4, 4, 4)


def squeezed(x: torch.Tensor) -> torch.Tensor:
    return Squeeze()(x)[0]


def make_layer(name: str, data: torch.Tensor):
    """A layer by name, with any data-dependent init done on ``data`` (N, 4, 4, 4)."""
    if name == "actnorm":
        layer = ActNorm(C)
        layer.initialize(data * 3 + 1)  # a non-trivial scale and bias
    elif name == "invconv":
        layer = InvConv1x1(C)
    elif name == "permutation":
        layer = Permutation(C, "reverse")
    elif name.startswith("coupling"):
        _, branches, depth, hk = name.split("-")
        layer = BiParallelAffineCoupling(C, 8, depth=int(depth), kernel_size=3,
                                         hidden_kernel_size=int(hk) or None, branches=branches)
    elif name.startswith("pca"):
        _, scope, mode = name.split("-")
        if scope == "patch":
            layer = PCALayer(C, S, "patch", trainable=mode == "trainable")
            layer.fit(data)
        else:  # global and zca act on the unsqueezed image
            layer = PCALayer(1, 2 * S, scope, trainable=mode == "trainable")
            layer.fit(Squeeze().inverse(data))
    elif name == "squeeze":
        layer = Squeeze()
    elif name == "flowstep":
        layer = FlowStep(C, ModelConfig(hidden_channels=8))
        layer.actnorm.initialize(data)
    elif name == "sequence":
        layer = FlowSequence(ActNorm(C), InvConv1x1(C), BiParallelAffineCoupling(C, 8))
        layer[0].initialize(data)
    else:
        raise KeyError(name)
    return layer


LAYERS = ["actnorm", "invconv", "permutation", "squeeze", "flowstep", "sequence",
          "coupling-both-3-0", "coupling-conv-3-0", "coupling-linear-3-0", "coupling-conv-3-1",
          "coupling-both-1-0", "coupling-both-2-0",
          "pca-global-fixed", "pca-zca-fixed", "pca-patch-fixed",
          "pca-global-trainable", "pca-zca-trainable", "pca-patch-trainable"]


def layer_input(name: str, x: torch.Tensor) -> torch.Tensor:
    """Global/zca PCA take the (N, 1, 8, 8) image; every other layer its squeeze."""
    return Squeeze().inverse(x) if name in ("pca-global-fixed", "pca-zca-fixed",
                                            "pca-global-trainable", "pca-zca-trainable") else x


@pytest.mark.parametrize("name", LAYERS)
def test_round_trip_after_perturbation(name, device, faces, perturb):
    torch.manual_seed(0)
    data = squeezed(faces(512, 8))
    layer = make_layer(name, data)
    perturb(layer)
    layer.to(device)
    random = torch.randn(16, C, S, S)
    real = squeezed(faces(16, 8, seed=1))
    for x in (random, real):
        x = layer_input(name, x).to(device)
        with torch.no_grad():
            y, logdet = layer(x)
            err = (layer.inverse(y) - x).abs().max().item()
        assert logdet.shape == (len(x),) and torch.isfinite(logdet).all()
        assert err < 1e-4, f"{name}: round trip error {err}"


@pytest.mark.parametrize("name", LAYERS)
def test_logdet_matches_autograd(name, faces, perturb, autograd_logdet, logdet_close):
    torch.manual_seed(0)
    data = squeezed(faces(512, 8)).double()
    layer = make_layer(name, data.float()).double()
    if name.startswith("pca"):  # refit in float64 so the stored matrices are exact
        layer.fit(data if "patch" in name else Squeeze().inverse(data))
    perturb(layer)
    x = layer_input(name, squeezed(faces(2, 8, seed=2)).double() + 0.1 * torch.randn(2, C, S, S,
                                                                                    dtype=float))
    with torch.no_grad():
        _, logdet = layer(x)
    logdet_close(logdet, autograd_logdet(lambda v: layer(v)[0], x))


# -- ActNorm -------------------------------------------------------------------------------------
def test_actnorm_initialises_from_data_once(faces):
    x = squeezed(faces(64, 8)) * 5 + 2
    layer = ActNorm(C)
    assert not layer.initialized
    y, _ = layer(x)  # the first forward initialises
    assert layer.initialized
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(C), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3), correction=0), torch.ones(C), atol=1e-4,
                               rtol=0)
    before = [p.clone() for p in layer.parameters()]
    layer(x * 10)  # a second batch does not re-initialise
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))
    fresh = ActNorm(C)
    fresh.load_state_dict(layer.state_dict())
    assert fresh.initialized
    torch.testing.assert_close(fresh(x * 10)[0], layer(x * 10)[0], rtol=0, atol=0)


def test_actnorm_constant_channel_is_clamped():
    x = torch.randn(8, C, S, S)
    x[:, 1] = 0.3
    layer = ActNorm(C)
    y, logdet = layer(x)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    assert float(layer.log_scale.detach().max()) <= -math.log(layer.min_std) + 1e-5


# -- InvConv, permutation, squeeze -------------------------------------------------------------
def test_invconv_starts_orthogonal_and_lu_logdet():
    layer = InvConv1x1(6)
    w = layer.weight().double()
    torch.testing.assert_close(w @ w.T, torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0)
    with torch.no_grad():
        layer.log_s.add_(0.3)
    x = torch.randn(2, 6, 3, 5)
    expected = 15 * torch.linalg.slogdet(layer.weight().double())[1]
    torch.testing.assert_close(layer(x)[1].double(), expected.expand(2), rtol=1e-5, atol=1e-5)


def test_permutation_reverses_channels():
    x = torch.randn(2, 5, 3, 3)
    y, logdet = Permutation(5)(x)
    assert torch.equal(y, x.flip(1)) and torch.equal(logdet, torch.zeros(2))
    with pytest.raises(ValueError, match="reverse"):
        Permutation(5, "sideways")


def test_squeeze_layout():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    y, _ = Squeeze()(x)
    assert y.shape == (2, 12, 2, 3)
    for c in range(3):
        for i in range(2):
            for j in range(2):  # channel 4c + 2i + j holds pixel (i, j) of every 2x2 patch
                assert torch.equal(y[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])
    with pytest.raises(ValueError, match="even"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


# -- coupling ------------------------------------------------------------------------------------
def test_coupling_branches_and_zero_init():
    x = torch.randn(3, C, S, S)
    for branches in ("both", "conv", "linear"):
        layer = BiParallelAffineCoupling(C, 8, branches=branches)
        assert (layer.conv_branch is None) == (branches == "linear")
        assert (layer.linear_branch is None) == (branches == "conv")
        y, logdet = layer(x)  # at init: y_a = x_a * sigmoid(2), y_b = x_b
        s = torch.sigmoid(torch.tensor(2.0))
        torch.testing.assert_close(y[:, :2], x[:, :2] * s)
        assert torch.equal(y[:, 2:], x[:, 2:])
        torch.testing.assert_close(logdet, torch.full((3,), 2 * S * S * math.log(s)))
    with pytest.raises(ValueError, match="branches"):
        BiParallelAffineCoupling(C, 8, branches="tree")


def test_coupling_conv_stack_shapes():
    convs = [m for m in BiParallelAffineCoupling(C, 8, depth=3, kernel_size=3,
                                                 hidden_kernel_size=1).conv_branch
             if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1), (3, 3)]  # Glow's 3x3-1x1-3x3
    assert not convs[-1].weight.any() and not convs[-1].bias.any()
    one = [m for m in BiParallelAffineCoupling(C, 8, depth=1).conv_branch]
    assert len(one) == 1 and not one[0].weight.any()  # depth 1: a single zero-init conv
    assert len([m for m in BiParallelAffineCoupling(C, 8, depth=5).conv_branch
                if isinstance(m, torch.nn.Conv2d)]) == 5


def test_linear_branch_is_affine_and_scale_bounded(perturb):
    layer = BiParallelAffineCoupling(C, 8, branches="linear")
    perturb(layer, scale=1.0)
    a, b = torch.randn(2, 2, S, S), torch.randn(2, 2, S, S)
    h = lambda v: torch.cat(layer.conditioner(v), 1)  # noqa: E731
    torch.testing.assert_close(h(a + b) - h(b), h(a) - h(torch.zeros_like(a)))
    layer = BiParallelAffineCoupling(C, 8)
    perturb(layer, scale=3.0)
    _, logdet = layer(torch.randn(4, C, S, S) * 10)
    assert (logdet < 0).all()  # sigmoid scale < 1: every log s is negative, never +inf


def _saturated_coupling(min_scale: float) -> BiParallelAffineCoupling:
    """A coupling whose conditioner says ``h_s = -20`` (s ~ 3e-10) and ``t = 10`` everywhere:
    what the shipped model's last level-0 coupling did on the faces it could not invert."""
    layer = BiParallelAffineCoupling(C, 8, branches="linear", min_scale=min_scale)
    with torch.no_grad():
        layer.linear_branch.bias.copy_(torch.tensor([-22.0, -22.0, 10.0, 10.0]))
    return layer


def test_coupling_scale_floor_keeps_float32_inverse_exact(faces, autograd_logdet, logdet_close):
    x = squeezed(faces(4))
    # without a floor, x_a * s drowns in the float32 rounding of t: the input is lost
    assert round_trip_error(_saturated_coupling(0.0), x) > 0.1
    layer = _saturated_coupling(0.1)
    y, logdet = layer(x)
    assert round_trip_error(layer, x) < 1e-5
    # the floor is a bound the parameters cannot break, and the log-det still matches autograd
    torch.testing.assert_close(logdet, torch.full((4,), 2 * S * S * math.log(0.1)))
    layer, x64 = layer.double(), x.double()
    logdet_close(layer(x64)[1].detach(), autograd_logdet(lambda v: layer(v)[0], x64))
    # above the floor the scale is the plain sigmoid (a model trained without it is unchanged)
    free = BiParallelAffineCoupling(C, 8, min_scale=0.1)
    torch.testing.assert_close(free(x)[1], BiParallelAffineCoupling(C, 8)(x)[1])
    with pytest.raises(ValueError, match="min_scale"):
        BiParallelAffineCoupling(C, 8, min_scale=1.0)


def test_model_config_scale_floor_and_legacy_configs():
    assert ModelConfig().coupling_min_scale == MIN_SCALE > 0
    legacy = {k: v for k, v in ModelConfig().to_dict().items() if k != "coupling_min_scale"}
    assert ModelConfig.from_dict(legacy).coupling_min_scale == 0.0  # saved before the floor
    step = FlowStep(C, ModelConfig(coupling_min_scale=0.05))
    assert step.coupling.min_scale == 0.05


# -- PCA -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["global", "zca", "patch"])
@pytest.mark.parametrize("trainable", [False, True])
def test_pca_whitens_and_inverts(scope, trainable, faces):
    x = faces(1024, 8)
    if scope == "patch":
        x = squeezed(x)
        layer = PCALayer(C, S, scope, trainable=trainable)
    else:
        layer = PCALayer(1, 8, scope, trainable=trainable)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full-rank data with N >= 4D: no warning
        layer.fit(x)
    assert layer.fitted and layer.num_regularized == 0
    with torch.no_grad():
        y, _ = layer(x)
    v = y.permute(0, 2, 3, 1).reshape(-1, C) if scope == "patch" else y.reshape(len(y), -1)
    v = v.double()
    torch.testing.assert_close(v.mean(0), torch.zeros(v.shape[1], dtype=v.dtype), atol=1e-4,
                               rtol=0)
    cov = (v - v.mean(0)).T @ (v - v.mean(0)) / len(v)
    torch.testing.assert_close(cov, torch.eye(len(cov), dtype=v.dtype), atol=2e-3, rtol=0)
    if scope != "zca":  # PCA-coefficient layout: component k has the k-th largest variance
        w = layer.matrix().detach().double()
        raw_var = 1 / w.square().sum(1)  # row k of W is u_k / sqrt(lambda_k)
        assert (raw_var[:-1] >= raw_var[1:] * (1 - 1e-6)).all()
    if scope == "zca":  # W = U diag U^T is symmetric
        w = layer.matrix().double()
        torch.testing.assert_close(w, w.T, atol=1e-3, rtol=1e-3)
    with torch.no_grad():
        assert float((layer.inverse(y) - x).abs().max()) < 1e-4
    names = {n for n, _ in layer.named_parameters()}
    assert names == ({"mean", "weight"} if trainable else set())


def test_pca_trainable_learns():
    layer = PCALayer(1, 4, "zca", trainable=True).fit(torch.randn(256, 1, 4, 4))
    x = torch.randn(8, 1, 4, 4)
    y, logdet = layer(x)
    (y.square().sum() - logdet.sum()).backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.mean.grad is not None


@pytest.mark.parametrize("scope", ["global", "zca", "patch"])
def test_pca_rank_deficient_fit_warns_and_stays_finite(scope, faces):
    if scope == "patch":  # constant channel vectors along one direction
        x = squeezed(faces(64, 8))
        x[:, 3] = x[:, 0]
        layer = PCALayer(C, S, scope)
        match = "regularised"
    else:  # N < D and a constant border
        x = faces(20, 8)
        x[..., 0, :] = -0.5
        layer = PCALayer(1, 8, scope)
        match = "20 samples for 64 dimensions"
    with pytest.warns(UserWarning, match=match):
        layer.fit(x)
    assert layer.num_regularized > 0
    test = squeezed(faces(16, 8, seed=3)) if scope == "patch" else faces(16, 8, seed=3)
    with torch.no_grad():
        y, logdet = layer(test)
        back = layer.inverse(y)
    assert torch.isfinite(y).all() and torch.isfinite(logdet).all()
    assert float((back - test).abs().max()) < 1e-4
    # unobserved directions are floored at an estimated variance: no huge coefficients
    assert float(y.abs().max()) < 1e3


def test_pca_requires_fit_and_keeps_it_in_state_dict(faces):
    layer = PCALayer(1, 8, "zca")
    with pytest.raises(RuntimeError, match="not fitted"):
        layer(faces(2, 8))
    layer.fit(faces(512, 8))
    fresh = PCALayer(1, 8, "zca")
    fresh.load_state_dict(layer.state_dict())
    assert fresh.fitted
    x = faces(4, 8, seed=5)
    torch.testing.assert_close(fresh(x)[0], layer(x)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="scope"):
        PCALayer(1, 8, "local")
    with pytest.raises(ValueError, match="expects inputs"):
        layer(torch.zeros(2, 1, 4, 4))


# -- split and priors ----------------------------------------------------------------------------
def test_split_merge_and_prior(perturb):
    layer = Split(C)
    x = torch.randn(5, C, S, S)
    kept, z, logp = layer.split(x)
    assert kept.shape == (5, 2, S, S) and z.shape == (5, 2, S, S)
    # zero-initialised prior: a standard normal
    torch.testing.assert_close(logp, (-0.5 * z.square() - 0.5 * math.log(2 * math.pi))
                               .flatten(1).sum(1))
    perturb(layer, scale=0.3)
    kept, z, logp = layer.split(x)
    mean, log_std = layer.prior_params(kept)
    torch.testing.assert_close(logp, gaussian_log_prob(z, mean, log_std))
    assert torch.equal(layer.merge(kept, z), x)
    y, lp = layer(x)  # the convention's forward: kept half, log p(z | kept) in the logdet slot
    assert torch.equal(y, kept) and torch.equal(lp, logp)
    assert torch.equal(layer.inverse(kept, z), x)
    torch.testing.assert_close(layer.sample(kept, temperature=0.0), mean)
    draws = torch.stack([layer.sample(kept, temperature=0.5) for _ in range(400)])
    torch.testing.assert_close(draws.std(0).mean(), (0.5 * log_std.exp()).mean(), rtol=0.1,
                               atol=0)


def test_class_conditional_prior(perturb):
    prior = ClassConditionalPrior((2, 3, 3), num_classes=4)
    z = torch.randn(6, 2, 3, 3)
    standard = (-0.5 * z.square() - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    torch.testing.assert_close(prior.log_prob(z), standard)  # zero init: standard normal
    torch.testing.assert_close(prior.log_prob(z, torch.arange(6) % 4), standard)
    perturb(prior, scale=0.5)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    lp = torch.stack([prior.log_prob(z, torch.full((6,), k)) for k in range(4)])
    assert (lp[1:] - lp[0]).abs().min() > 1e-3  # each class its own density
    mean, log_std = prior.params(y)
    assert mean.shape == (6, 2, 3, 3)
    torch.testing.assert_close(prior.log_prob(z, y), gaussian_log_prob(z, mean, log_std))
    base_mean, base_log_std = prior.params(None)
    torch.testing.assert_close(prior.log_prob(z), gaussian_log_prob(z, base_mean, base_log_std))
    torch.testing.assert_close(prior.params(2)[0][0], mean[2])
    assert torch.equal(prior.sample(3, 2, temperature=0.0), prior.params(2)[0].expand(3, 2, 3, 3))
    assert prior.sample(5, torch.arange(5) % 4).shape == (5, 2, 3, 3)
    with pytest.raises(ValueError, match="labels"):
        prior.log_prob(z, torch.full((6,), 4))
    with pytest.raises(ValueError, match="unconditional"):
        ClassConditionalPrior((2, 3, 3), 0).log_prob(z, y)
