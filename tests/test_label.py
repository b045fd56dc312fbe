"""The label as one object (``bplf.flows.label``): its config, the translation of older configs
and weights, the null label, and what the model answers about it."""

from __future__ import annotations

import json

import pytest
import torch

from bplf.flows.label import (
    Label,
    LabelConfig,
    check_labels,
    null_offset,
    upgrade_config,
    upgrade_state,
)
from bplf.model import ModelConfig, build_model
from bplf.pretrained import PRETRAINED_DIR, PREVIOUS_DIR
from bplf.runs import load_run_config

TINY = dict(image_size=8, levels=2, steps_per_level=1, hidden_channels=8)
FLAT = {"split_conditioning": True, "coupling_conditioning": True, "label_embedding_dim": 5,
        "class_head": False}


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
        build_model("bplf", **TINY, coupling_conditioning=True)  # code spells it one way


def test_shipped_configs_translate_with_the_run_that_trained_them():
    shipped, train = load_run_config(PRETRAINED_DIR)
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
    plain = build_model("bplf", **TINY)
    assert not plain.map_depends_on_label and not plain.guidable
    assert "swap" not in plain.edit_methods and plain.null_label is None
    coupled = build_model("bplf", **TINY, label=LabelConfig(couplings=True))
    assert coupled.map_depends_on_label and not coupled.guidable
    assert "swap" in coupled.edit_methods and coupled.null_label == 7
    guided = build_model("bplf", **TINY, label={"couplings": True, "null_trained": True})
    assert guided.guidable


def test_weights_saved_under_the_old_embedding_name_load():
    torch.manual_seed(0)
    model = build_model("bplf", **TINY, label=LabelConfig(couplings=True))
    state = model.state_dict()
    old = {("label_embedding.weight" if k == "label.embedding.weight" else k): v.clone() + 1
           for k, v in state.items()}
    fresh = build_model("bplf", **TINY, label=LabelConfig(couplings=True))
    fresh.load_state_dict(old)
    assert torch.equal(fresh.label.embedding.weight, state["label.embedding.weight"] + 1)
    assert "label.embedding.weight" in upgrade_state({"label_embedding.weight": 0})
