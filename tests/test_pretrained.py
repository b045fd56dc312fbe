"""The shipped pretrained model loads with no argument, round-trips, and (with the real data
present) beats the issue's bar on FER-2013's test faces."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from bplf.data import load_emotion_set
from bplf.evaluate import bpd_report
from bplf.pretrained import EXPORT_FILE, PRETRAINED_DIR, load_pretrained


def test_shipped_checkpoint_is_complete_and_small():
    for name in ("config.json", EXPORT_FILE, "metrics.jsonl", "README.md", "evaluation.json"):
        assert (PRETRAINED_DIR / name).exists(), name
    # what is shipped; a local training run also leaves checkpoint.pt, best.pt and samples/
    # there, which git ignores
    shipped = [p for p in PRETRAINED_DIR.iterdir()
               if p.is_file() and p.name not in ("checkpoint.pt", "best.pt")]
    total = sum(p.stat().st_size for p in shipped)
    assert total <= 25 * 2**20, total


def test_load_pretrained_rebuilds_the_bplf_preset(faces):
    model = load_pretrained()
    cfg = model.config
    assert (cfg.image_size, cfg.channels, cfg.num_classes) == (48, 1, 7)
    assert cfg.conditioner == "both" and not model.training
    x = faces(16, 48, 1)
    y = torch.arange(16) % 7
    with torch.no_grad():
        err = (model.decode(model.encode(x, y), y) - x).abs().max()
        samples = model.sample(14, y=torch.arange(14) % 7, temperature=0.7,
                               generator=torch.Generator().manual_seed(0))
    assert err < 1e-4
    assert torch.isfinite(samples).all() and samples.abs().max() < 2


def test_committed_evaluation_matches_the_bar():
    report = json.loads((PRETRAINED_DIR / "evaluation.json").read_text())
    assert set(report["sources"]) == {"fer2013", "ckplus", "jaffe"}
    assert report["sources"]["fer2013"]["marginal_bpd"] <= 5.5
    assert report["round_trip_max_abs_error"] < 1e-3


RAW = os.environ.get("BPLF_RAW_DIR")


@pytest.mark.skipif(not RAW or not (Path(RAW) / "fer2013.zip").exists(),
                    reason="the public datasets are not in BPLF_RAW_DIR")
def test_pretrained_bpd_on_real_fer_test_faces():
    test = load_emotion_set().select(source="fer2013", split="test").subsample(300, seed=1)
    model = load_pretrained()
    report = bpd_report(model, test.images, test.labels)
    assert report["marginal_bpd"] <= 5.5, report
    # summing the emotion out loses at most -log p(true emotion) nats per image
    assert report["marginal_bpd"] <= report["conditional_bpd"] + 8 / (48 * 48 * 0.69)
