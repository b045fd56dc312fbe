"""The label as one object (``bplf.flows.label``): its config, the translation of older configs
and weights, the null label, what the model answers about it; and where the label enters:
label-conditioned split priors and couplings, guidance, the class head of the hybrid objective,
swap editing, the conditioning metrics, and the shipped model's likelihood unchanged by all of
it."""

from __future__ import annotations

import ast
import inspect
import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, TINY_MODEL_2STEPS

import bplf.model
from bplf.editing import edit_expression
from bplf.flows import BiParallelAffineCoupling, CouplingCondition, Split
from bplf.flows.label import (
    Label,
    LabelConfig,
    check_labels,
    null_offset,
    upgrade_config,
    upgrade_state,
)
from bplf.likelihood import dequantize, to_uint8
from bplf.model import (
    EDIT_METHODS,
    ModelConfig,
    build_model,
    make_model,
    register_implementation,
)
from bplf.pretrained import LIKELIHOOD_DIR, PREVIOUS_DIR
from bplf.research.metrics.faces import pair_ssim, rmse, same_emotion_pairs, ssim
from bplf.research.metrics.fidelity import generative_accuracy
from bplf.runs import TrainConfig, load_run_config
from bplf.train import training_loss

FLAT = {"split_conditioning": True, "coupling_conditioning": True, "label_embedding_dim": 5,
        "class_head": False}
#: where the label enters, beyond the top prior
VARIANTS = {
    "top": {},
    "splits": {"label": LabelConfig(splits=True)},
    "couplings": {"label": LabelConfig(couplings=True, embedding_dim=3)},
    "all": {"label": LabelConfig(splits=True, couplings=True, class_head=True)},
}


def test_flat_label_fields_of_older_configs_are_translated():
    old = {**{k: v for k, v in ModelConfig().to_dict().items() if k != "label"}, **FLAT}
    cfg = ModelConfig.from_dict(old)
    assert cfg.label == LabelConfig(splits=True, couplings=True, embedding_dim=5)
    assert ModelConfig.from_dict(old, null_trained=True).label.null_trained
    # a config that has a label entry says everything itself
    assert not ModelConfig.from_dict(cfg.to_dict(), null_trained=True).label.null_trained
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert upgrade_config({"levels": 2}) == {"levels": 2, "label": {}}
    with pytest.raises(ValueError, match="unknown LabelConfig fields"):
        ModelConfig.from_dict({"label": {"prior": True}})
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        build_model("bplf", **TINY_MODEL, coupling_conditioning=True)  # code spells it one way


def test_shipped_configs_translate_with_the_run_that_trained_them():
    shipped, train = load_run_config(LIKELIHOOD_DIR)
    assert train.label_dropout > 0
    assert shipped.label == LabelConfig(splits=True, couplings=True, null_trained=True)
    previous, train = load_run_config(PREVIOUS_DIR)
    assert train.label_dropout == 0 and previous.label == LabelConfig()


def test_a_trained_null_label_needs_couplings_and_labels_need_classes():
    with pytest.raises(ValueError, match="needs label-conditioned couplings"):
        LabelConfig(null_trained=True)
    with pytest.raises(ValueError, match="embedding_dim"):
        LabelConfig(embedding_dim=0)
    with pytest.raises(ValueError, match="label.splits needs labels"):
        Label(LabelConfig(splits=True), 0)


def test_the_null_label_has_no_offset_and_its_own_embedding():
    table = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(null_offset(table, torch.tensor([2, 3, 0])),
                       torch.tensor([[4.0, 5.0], [0.0, 0.0], [0.0, 1.0]]))
    label = Label(LabelConfig(couplings=True, embedding_dim=4), 3)
    assert label.null == 3 and label.required
    assert torch.equal(label.labels(3, 2), torch.tensor([3, 3]))
    cond = label.condition(torch.tensor([0, 1]), guidance=2.0)
    assert torch.equal(cond.null, label.embedding.weight[3][None]) and cond.guidance == 2.0
    with pytest.raises(ValueError, match="pass y"):
        label.labels(None, 2)
    plain = Label(LabelConfig(splits=True), 3)
    assert plain.null is None and plain.embedding is None and plain.labels(None, 2) is None
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        plain.labels(3, 2)
    with pytest.raises(ValueError, match="label.couplings"):
        plain.condition(torch.tensor([0]), guidance=2.0)
    with pytest.raises(ValueError, match="expected 2 labels"):
        check_labels([0, 1, 2], 3, n=2)


def test_the_model_answers_for_its_label():
    plain = build_model("bplf", **TINY_MODEL)
    assert not plain.map_depends_on_label and not plain.guidable
    assert "swap" not in plain.edit_methods and plain.null_label is None
    coupled = build_model("bplf", **TINY_MODEL, label=LabelConfig(couplings=True))
    assert coupled.map_depends_on_label and not coupled.guidable
    assert "swap" in coupled.edit_methods and coupled.null_label == 7
    guided = build_model("bplf", **TINY_MODEL, label={"couplings": True, "null_trained": True})
    assert guided.guidable


def test_weights_saved_under_the_old_embedding_name_load():
    torch.manual_seed(0)
    model = build_model("bplf", **TINY_MODEL, label=LabelConfig(couplings=True))
    state = model.state_dict()
    old = {("label_embedding.weight" if k == "label.embedding.weight" else k): v.clone() + 1
           for k, v in state.items()}
    fresh = build_model("bplf", **TINY_MODEL, label=LabelConfig(couplings=True))
    fresh.load_state_dict(old)
    assert torch.equal(fresh.label.embedding.weight, state["label.embedding.weight"] + 1)
    assert "label.embedding.weight" in upgrade_state({"label_embedding.weight": 0})


def conditioned(faces, perturb, dtype=torch.float64, **overrides):
    """A tiny initialised BPLF with every parameter perturbed (so labels matter)."""
    torch.manual_seed(0)
    model = build_model("bplf", **{**TINY_MODEL_2STEPS, **overrides}).to(dtype)
    y = torch.arange(256) % 7
    model.initialize(faces(256, 8).to(dtype), y if model.map_depends_on_label else None)
    perturb(model, 0.05)
    return model.eval()


def flat(zs):
    return torch.cat([z.flatten(1) for z in zs], 1)


# -- the coupling --------------------------------------------------------------------------------
def test_conditioned_coupling_round_trip_and_logdet(faces, perturb, autograd_logdet, logdet_close):
    torch.manual_seed(0)
    c = BiParallelAffineCoupling(4, 8, cond_channels=3).double()
    perturb(c, 0.3)
    x = torch.randn(3, 4, 4, 4, dtype=torch.float64)
    e = torch.randn(3, 3, dtype=torch.float64)
    null = torch.randn(1, 3, dtype=torch.float64)
    for cond in (e, CouplingCondition(e), CouplingCondition(e, null, 2.5)):
        y, logdet = c(x, cond)
        assert torch.allclose(c.inverse(y, cond), x, atol=1e-10)
        for i in range(len(x)):
            ci = cond[i : i + 1] if isinstance(cond, torch.Tensor) else CouplingCondition(
                cond.embedding[i : i + 1], cond.null, cond.guidance)
            ref = autograd_logdet(lambda v, ci=ci: c(v, ci)[0], x[i : i + 1])
            logdet_close(logdet[i : i + 1].detach(), ref)
    with pytest.raises(ValueError, match="label-conditioned"):
        c(x)


def test_label_changes_only_the_transformed_half():
    torch.manual_seed(0)
    c = BiParallelAffineCoupling(4, 8, cond_channels=3)
    for p in c.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 4, 4, 4)
    y0, _ = c(x, torch.zeros(2, 3))
    y1, _ = c(x, torch.ones(2, 3))
    assert torch.equal(y0[:, 2:], y1[:, 2:])  # x_b passes through, whatever the label
    assert not torch.allclose(y0[:, :2], y1[:, :2])


def test_guidance_extrapolates_before_the_floor():
    torch.manual_seed(0)
    c = BiParallelAffineCoupling(4, 8, cond_channels=3, min_scale=0.1)
    for p in c.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x_b = torch.randn(2, 2, 4, 4)
    e, null = torch.randn(2, 3), torch.randn(1, 3)
    h1, t1 = c.conditioner(x_b, e)
    h0, t0 = c.conditioner(x_b, null)
    assert torch.equal(c.conditioner(x_b, CouplingCondition(e, null, 1.0))[0], h1)
    hw, tw = c.conditioner(x_b, CouplingCondition(e, null, 4.0))
    assert torch.allclose(hw, h0 + 4.0 * (h1 - h0), atol=1e-5)
    assert torch.allclose(tw, t0 + 4.0 * (t1 - t0), atol=1e-5)
    assert c.log_scale(hw).min() >= math.log(0.1) - 1e-6  # the floor still holds
    # exact in float64 (in float32 the shifts of so large a guidance cost ~6e-8 * |t| / m)
    c, x = c.double(), torch.randn(2, 4, 4, 4, dtype=torch.float64)
    cond = CouplingCondition(e.double(), null.double(), 4.0)
    assert torch.allclose(c.inverse(c(x, cond)[0], cond), x, atol=1e-10)


def test_conditioned_split_prior(faces):
    torch.manual_seed(0)
    s = Split(4, num_classes=3, size=4)
    with torch.no_grad():
        for p in s.parameters():
            p.normal_(std=0.3)
    kept, z = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 4, 4)
    base = s.prior_params(kept)
    for k in range(3):
        mean, log_std = s.prior_params(kept, torch.full((2,), k))
        assert torch.allclose(mean - base[0], s.class_mean[k].expand_as(mean), atol=1e-6)
        assert torch.allclose(log_std - base[1], s.class_log_std[k].expand_as(mean), atol=1e-6)
    null = s.prior_params(kept, torch.full((2,), 3))  # the null label: no offset
    assert torch.equal(null[0], base[0]) and torch.equal(null[1], base[1])
    assert not torch.allclose(s.log_prob(z, kept, 0), s.log_prob(z, kept, 1))
    assert Split(4).class_mean is None


# -- the model -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(VARIANTS))
def test_round_trip_and_logdet_with_labels(name, faces, perturb, autograd_logdet, logdet_close):
    model = conditioned(faces, perturb, **VARIANTS[name])
    x = faces(3, 8, seed=1).double()
    y = torch.tensor([0, 3, 6])
    with torch.no_grad():
        zs = model.encode(x, y)
        assert (model.decode(zs, y) - x).abs().max() < 1e-9
    labels = model._labels(y, 3)
    cond = model._condition(labels)
    _, logdet, split_logp, _ = model._encode(x, y=labels, cond=cond)
    for i in range(3):
        ci = model._condition(labels[i : i + 1])
        ref = autograd_logdet(lambda v, ci=ci: flat(model._encode(v, cond=ci)[0]), x[i : i + 1])
        logdet_close(logdet[i : i + 1].detach(), ref, 1e-6)
    lp = model.log_prob(x, y)
    assert torch.allclose(lp, logdet + split_logp + model.top_prior.log_prob(zs[-1], y))
    assert torch.allclose(model.prior_log_prob(zs, y), split_logp
                          + model.top_prior.log_prob(zs[-1], y))
    # every class at once, the fast path or per class, equals the one-label log_prob
    per_class = model.log_prob_classes(x)
    for k in range(7):
        assert torch.allclose(per_class[:, k], model.log_prob(x, k), atol=1e-8)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_label_changes_what_it_should(name, faces, perturb):
    model = conditioned(faces, perturb, **VARIANTS[name])
    x = faces(2, 8, seed=2).double()
    with torch.no_grad():
        z0, z1 = model.encode(x, 0), model.encode(x, 1)
        maps_differ = any(not torch.allclose(a, b) for a, b in zip(z0, z1, strict=True))
        assert maps_differ == model.map_depends_on_label
        assert not torch.allclose(model.log_prob(x, 0), model.log_prob(x, 1))
        if not model.config.label.splits and not model.map_depends_on_label:
            # only the top prior sees the label: log p(x|0) - log p(x|1) is its difference
            top = model.encode(x)[-1]
            assert torch.allclose(model.log_prob(x, 0) - model.log_prob(x, 1),
                                  model.top_prior.log_prob(top, 0)
                                  - model.top_prior.log_prob(top, 1))


def test_label_conditioned_couplings_refuse_no_label(faces, perturb):
    model = conditioned(faces, perturb, **VARIANTS["couplings"])
    x = faces(2, 8).double()
    for call in (lambda: model.log_prob(x), lambda: model.encode(x), lambda: model.sample(2),
                 lambda: model.decode(model.encode(x, 0))):
        with pytest.raises(ValueError, match="label-conditioned.*pass y"):
            call()
    assert model.null_label == 7
    assert torch.isfinite(model.log_prob(x, model.null_label)).all()  # the unconditional model
    with pytest.raises(ValueError, match="labels must lie in \\[0, 8\\)"):
        model.log_prob(x, 8)
    # models without label-conditioned couplings keep y=None and have no null label
    plain = conditioned(faces, perturb, **VARIANTS["splits"])
    assert plain.null_label is None and torch.isfinite(plain.log_prob(x)).all()
    with pytest.raises(ValueError, match="labels must lie in \\[0, 7\\)"):
        plain.log_prob(x, 7)


def test_guided_sampling(faces, perturb):
    model = conditioned(faces, perturb, **VARIANTS["couplings"])
    g = torch.Generator().manual_seed(0)
    plain = model.sample(4, 2, 0.7, generator=torch.Generator().manual_seed(0))
    same = model.sample(4, 2, 0.7, generator=torch.Generator().manual_seed(0), guidance=1.0)
    guided = model.sample(4, 2, 0.7, generator=torch.Generator().manual_seed(0), guidance=3.0)
    assert torch.equal(plain, same)
    assert torch.isfinite(guided).all() and not torch.allclose(plain, guided)
    # a guided encode/decode pair is still an exact bijection
    x = faces(2, 8).double()
    zs = model.encode(x, 3, guidance=3.0)
    assert (model.decode(zs, 3, guidance=3.0) - x).abs().max() < 1e-9
    with pytest.raises(ValueError, match="label.couplings"):
        conditioned(faces, perturb).sample(2, 0, generator=g, guidance=2.0)


def test_class_head_gradient_reaches_the_flow(faces, perturb):
    model = conditioned(faces, perturb, dtype=torch.float32, **VARIANTS["all"]).train()
    x, y = faces(8, 8).float(), torch.arange(8) % 7
    lp, logits = model.log_prob_and_logits(x, y)
    assert logits.shape == (8, 7)
    model.zero_grad()
    torch.nn.functional.cross_entropy(logits, y).backward()
    coupling = model.levels[0].steps[0].coupling.conv_branch[0].weight
    assert coupling.grad is not None and coupling.grad.abs().sum() > 0
    # the hybrid loss: bits per dimension + weight x cross-entropy in bits per image
    lp, logits = model.log_prob_and_logits(x, y)
    ce = torch.nn.functional.cross_entropy(logits, y)
    bpd = ((-lp + 64 * math.log(256)) / (64 * math.log(2))).mean()
    loss = training_loss(lp, 64, logits, y, 0.01)
    assert torch.allclose(loss, bpd + 0.01 * ce / math.log(2), atol=1e-5)
    assert torch.allclose(training_loss(lp, 64), bpd, atol=1e-5)
    with pytest.raises(ValueError, match="class head"):
        conditioned(faces, perturb).class_logits(torch.zeros(1, 8, 2, 2))


def test_configs_default_to_today_and_load_without_the_new_fields():
    cfg = ModelConfig()
    assert cfg.label == LabelConfig() and not cfg.label.used
    old = {k: v for k, v in cfg.to_dict().items() if k != "label"}
    assert ModelConfig.from_dict(old) == cfg
    assert set(build_model("bplf", **TINY_MODEL_2STEPS).state_dict()) == set(
        build_model("bplf", **TINY_MODEL_2STEPS, label=LabelConfig(splits=False)).state_dict())
    with pytest.raises(ValueError, match="label.couplings needs labels"):
        ModelConfig(num_classes=0, label=LabelConfig(couplings=True))
    t = TrainConfig()
    assert t.class_loss_weight == 0.0 and t.label_dropout == 0.0
    d = json.loads(json.dumps(t.__dict__))
    del d["class_loss_weight"], d["label_dropout"]
    assert TrainConfig.from_dict(d) == t
    for bad in ({"label_dropout": 1.0}, {"label_dropout": -0.1}, {"class_loss_weight": -1.0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)


def test_trainer_label_dropout_and_class_loss(synthetic_es, tmp_path):
    from bplf.train import Trainer, run_model

    quick = dict(batch_size=8, init_size=32, val_size=16, eval_interval=2, log_interval=1,
                 sample_interval=1000, checkpoint_interval=1000, warmup_steps=1,
                 train_limit=100, steps=2)
    tiny = {"levels": 2, "steps_per_level": 1, "hidden_channels": 8, "pca": "none"}
    dropout, class_loss = TrainConfig(label_dropout=0.5, **quick), TrainConfig(
        class_loss_weight=0.01, **quick)
    with pytest.raises(ValueError, match="label.couplings"):
        run_model(dropout, tiny, 48)
    with pytest.raises(ValueError, match="class_head"):
        Trainer(run_model(class_loss, tiny, 48), class_loss, tmp_path / "b", "cpu", synthetic_es)
    # a model whose label config does not say what the run trains is refused
    with pytest.raises(ValueError, match="null_trained"):
        Trainer(run_model(TrainConfig(**quick), {**tiny, "label": LabelConfig(couplings=True)},
                          48), dropout, tmp_path / "a", "cpu", synthetic_es)
    cfg = TrainConfig(label_dropout=0.5, class_loss_weight=0.01, **quick)
    coupled = {**tiny, "label": LabelConfig(couplings=True, class_head=True)}
    trainer = Trainer(run_model(cfg, coupled, 48), cfg, tmp_path / "c", "cpu", synthetic_es)
    assert trainer.model.guidable  # the run trains the null label, and the model says so
    trainer.initialize()
    trainer._global_batch(64)
    assert trainer._dropped is not None and 0 < int(trainer._dropped.sum()) < 64
    trainer.fit()
    assert trainer.state.step == 2
    assert trainer.model.label.embedding.weight.grad is not None


# -- editing -------------------------------------------------------------------------------------
def test_swap_editing(faces, perturb):
    model = conditioned(faces, perturb, **VARIANTS["couplings"])
    assert model.edit_methods == EDIT_METHODS
    assert "swap" not in conditioned(faces, perturb).edit_methods
    x = faces(3, 8).double()
    src = torch.tensor([0, 1, 2])
    for guidance in (1.0, 2.5):
        same = edit_expression(model, x, src, 4, 0.0, "swap", guidance=guidance)
        assert (same - x).abs().max() < 1e-9  # intensity 0 is the identity, at any guidance
    moved = edit_expression(model, x, src, 4, 1.0, "swap")
    # intensity 1 is a plain label swap: encode with the source, decode with the target
    ref = model.decode(model.encode(x, src), 4)
    assert torch.allclose(moved, ref, atol=1e-9) and not torch.allclose(moved, x)
    guided = edit_expression(model, x, src, 4, 1.0, "swap", guidance=2.5)
    assert not torch.allclose(guided, moved)
    # prior edits still work on such a model (encoded and decoded with the source label)
    assert (edit_expression(model, x, src, 4, 0.0, "prior") - x).abs().max() < 1e-9
    with pytest.raises(ValueError, match="swap"):
        edit_expression(conditioned(faces, perturb), x, 0, 4, 1.0, "swap")
    with pytest.raises(ValueError, match="guidance"):
        edit_expression(model, x, 0, 4, 1.0, "prior", guidance=2.0)


# -- metrics -------------------------------------------------------------------------------------
def test_conditioning_metrics(faces, perturb):
    lp = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    acc = generative_accuracy(lp, np.array([1, 0, 0, 0]))
    assert acc["accuracy"] == 0.75 and acc["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    u = np.random.default_rng(0).integers(0, 256, (4, 16, 16), dtype=np.uint8)
    assert np.allclose(ssim(u, u), 1.0) and np.allclose(rmse(u, u), 0.0)
    assert (ssim(u, u[::-1]) < 0.5).all() and (rmse(u, u[::-1]) > 10).all()
    i, j = same_emotion_pairs(np.array([0, 0, 1, 1, 1, 2]))
    assert len(i) == 5 and (i != j).all()
    model = conditioned(faces, perturb, dtype=torch.float32, **VARIANTS["couplings"])
    images = ((faces(6, 8).numpy()[:, 0] + 0.5) * 256).astype(np.uint8)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    edited = edit_expression(model, dequantize(images, centre=True), labels, (labels + 1) % 3,
                             0.0, "swap")
    out = to_uint8(edited)[:, 0].numpy()  # a swap of intensity 0 keeps the face
    assert ssim(images, out).mean() == pytest.approx(1.0) and rmse(images, out).mean() < 0.5
    assert pair_ssim(images, labels.numpy()) < 1.0  # two different faces of one emotion


# -- the implementation registry -----------------------------------------------------------------
def test_model_does_not_import_the_peers():
    tree = ast.parse(inspect.getsource(bplf.model))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "bplf.research.peers" not in imported

    class Toy(torch.nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config

    register_implementation("toy-test", Toy)
    assert isinstance(make_model(ModelConfig(**TINY_MODEL_2STEPS, implementation="toy-test")), Toy)


# -- the shipped model ---------------------------------------------------------------------------
def test_shipped_model_log_prob_is_unchanged():
    """Reference values computed with the code before label conditioning existed (the model
    shipped then, now the previous one, conftest's draw_faces(3, 48, seed=0)), hard-coded: the
    new ModelConfig fields default to that model, so its likelihood must not move (relative
    tolerance 1e-5)."""
    from conftest import draw_faces

    from bplf.pretrained import PREVIOUS_DIR, load_pretrained

    model = load_pretrained(PREVIOUS_DIR)
    x = draw_faces(3, 48, 1, seed=0)
    with torch.no_grad():
        conditional = model.log_prob(x, torch.tensor([0, 3, 6]))
        base = model.log_prob(x)
        classes = model.log_prob_classes(x)[:, [0, 3]]
    expected = {
        "conditional": [5253.6123046875, 5585.8564453125, 5588.38916015625],
        "base": [5251.59619140625, 5578.78857421875, 5583.90283203125],
        "classes": [[5253.6123046875, 5253.85693359375], [5582.54052734375, 5585.8564453125],
                    [5584.505859375, 5588.53173828125]],
    }
    for got, name in ((conditional, "conditional"), (base, "base"), (classes, "classes")):
        assert torch.allclose(got.double(), torch.tensor(expected[name], dtype=torch.float64),
                              rtol=1e-5, atol=0), name
