"""The peer Glow (normflows) behind bplf's model interface: a correct density, trainable by
bplf's trainer, and matched in size to the glow preset."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("normflows")

from bplf.model import build_model  # noqa: E402
from bplf.research.peers import NormflowsGlow  # noqa: E402
from bplf.runs import TrainConfig, load_checkpoint  # noqa: E402
from bplf.train import Trainer, run_model  # noqa: E402

SMALL = dict(image_size=16, levels=2, steps_per_level=2, hidden_channels=16)


def test_matches_the_glow_preset_in_size():
    peer, ours = build_model("glow-normflows"), build_model("glow")
    assert isinstance(peer, NormflowsGlow)
    assert abs(peer.num_parameters() / ours.num_parameters() - 1) < 0.01


def test_log_prob_agrees_with_the_flows_own_sampler():
    """normflows returns log q of its samples; our log_prob of them must agree (labels, levels
    and the log-determinants wired right)."""
    torch.manual_seed(0)
    model = build_model("glow-normflows", **SMALL)
    x0 = torch.rand(64, 1, 16, 16) - 0.5
    model.initialize(x0, torch.randint(7, (64,)))
    y = torch.arange(7).repeat(3)
    with torch.no_grad():
        x, log_q = model.flow.sample(len(y), y)
        assert torch.allclose(model.log_prob(x, y), log_q, atol=1e-3, rtol=1e-4)
        per_class = model.log_prob_classes(x)
        assert torch.allclose(per_class[torch.arange(len(y)), y], log_q, atol=1e-3, rtol=1e-4)
        assert (model.decode(model.encode(x, y), y) - x).abs().max() < 1e-4
    assert model.sample(5, y=3, temperature=0.7).shape == (5, 1, 16, 16)
    a, b = (model.sample(4, 2, 0.7, generator=torch.Generator().manual_seed(9)) for _ in "ab")
    assert torch.equal(a, b) and not torch.equal(a, model.sample(4, 2, 0.7))


def test_trains_with_bplf_trainer_and_reloads(synthetic_es, tmp_path):
    cfg = TrainConfig(preset="glow-normflows", steps=30, batch_size=16, warmup_steps=5,
                      eval_interval=15, log_interval=15, sample_interval=30,
                      checkpoint_interval=30, init_size=64, pca_fit_size=64, train_limit=300,
                      val_size=64)
    model = run_model(cfg, {"steps_per_level": 2, "hidden_channels": 16}, 48)
    trainer = Trainer(model, cfg, tmp_path, "cpu", synthetic_es)
    start = trainer.evaluate()
    trainer.fit()
    assert trainer.state.best_val_bpd < start - 0.1
    model = load_checkpoint(tmp_path)
    assert isinstance(model, NormflowsGlow)
    x = torch.rand(4, 1, 48, 48) - 0.5
    with torch.no_grad():
        assert torch.allclose(model.log_prob(x, 1), trainer.model.log_prob(x, 1), atol=1e-4)
