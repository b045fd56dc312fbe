"""The run directory (``bplf.runs``): its config files, weight files and metrics log, read
without the trainer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY_MODEL

from bplf.flows import LabelConfig
from bplf.model import ModelConfig, build_model
from bplf.runs import (
    BEST_FILE,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    TrainConfig,
    load_checkpoint,
    load_run_config,
    read_metrics,
    save_run_config,
    weights_file,
)


def test_reading_runs_does_not_import_the_trainer():
    code = ("import sys, bplf, bplf.runs, bplf.research.evaluate, bplf.pretrained; "
            "print('bplf.train' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_run_config_round_trips_and_a_flat_one_is_translated(tmp_path):
    model = ModelConfig(**TINY_MODEL, label=LabelConfig(couplings=True, null_trained=True))
    train = TrainConfig(steps=7, label_dropout=0.1)
    save_run_config(tmp_path, model, train)
    assert load_run_config(tmp_path) == (model, train)
    # a config written before LabelConfig: flat fields, the null label told by the run
    payload = json.loads((tmp_path / CONFIG_FILE).read_text())
    del payload["model"]["label"]
    payload["model"].update(split_conditioning=False, coupling_conditioning=True,
                            label_embedding_dim=8, class_head=False)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(payload))
    assert load_run_config(tmp_path) == (model, train)


def test_weights_are_found_in_order_and_loaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights"):
        weights_file(tmp_path)
    torch.manual_seed(0)
    model = build_model("bplf", **TINY_MODEL, pca="none")
    save_run_config(tmp_path, model.config, TrainConfig(noise_std=0.01))
    torch.save({"model": model.state_dict()}, tmp_path / CHECKPOINT_FILE)
    assert weights_file(tmp_path).name == CHECKPOINT_FILE
    torch.save({"model": model.state_dict()}, tmp_path / BEST_FILE)
    assert weights_file(tmp_path).name == BEST_FILE
    loaded = load_checkpoint(tmp_path)
    assert not loaded.training and loaded.noise_std == 0.01
    x = torch.rand(2, 1, 8, 8) - 0.5
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, 1), model.eval().log_prob(x, 1))


def test_metrics_log_drops_a_torn_last_row(tmp_path):
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]


def test_the_trainer_takes_a_model_of_the_data_size(synthetic_es, tmp_path):
    from bplf.train import Trainer, run_model

    cfg = TrainConfig(steps=1, batch_size=4, init_size=8, val_size=8, train_limit=50)
    with pytest.raises(ValueError, match="built for 1 x 16"):
        Trainer(run_model(cfg, {"levels": 2, "steps_per_level": 1}, 16), cfg, tmp_path, "cpu",
                synthetic_es)
