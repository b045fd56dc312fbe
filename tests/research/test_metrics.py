"""The emotion classifier and the fidelity metrics built on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from bplf.data import EMOTIONS, load_emotion_set
from bplf.editing import latent_means
from bplf.likelihood import dequantize
from bplf.model import build_model
from bplf.research.metrics import (
    ClassifierConfig,
    evaluate_classifier,
    load_classifier,
    train_classifier,
)
from bplf.research.metrics.classifier import CLASSIFIER_DIR, predict_labels
from bplf.research.metrics.fidelity import (
    edit_sweep,
    fidelity_table,
    frechet_distance,
    untrained_like,
)


def test_frechet_distance_matches_the_matrix_square_root_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sa + sb)
           - 2 * np.trace(linalg.sqrtm(sa @ sb).real))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(a, a + 2.0) == pytest.approx(6 * 4.0, rel=1e-9)  # shift: |d|^2
    small = rng.normal(size=(5, 20))  # rank-deficient covariance: still finite and >= 0
    assert 0 <= frechet_distance(small, small + 0.1) < 1
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(a[:1], b)


@pytest.fixture(scope="module")
def es(synthetic_es):
    return synthetic_es


@pytest.fixture(scope="module")
def trained(es, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn")
    cfg = ClassifierConfig(widths=[8, 16, 16], features=16, epochs=4, batch_size=64,
                           train_limit=1200)
    return train_classifier(es, out, cfg, device="cpu"), out


def test_classifier_learns_the_synthetic_expressions(es, trained):
    model, out = trained
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    report = evaluate_classifier(model, es, "test")
    assert report["accuracy"] > 0.5, report["accuracy"]  # chance is 1/7
    conf = np.array(report["confusion"])
    assert conf.shape == (7, 7) and conf.sum() == report["n"]
    assert np.trace(conf) / conf.sum() == pytest.approx(report["accuracy"])
    # the saved weights are the best val epoch, and reload to the same predictions
    best = max(rows, key=lambda r: r["val_acc"])["epoch"]
    assert torch.load(out / "model.pt", weights_only=True)["epoch"] == best
    x = dequantize(es.select(split="test").images[:16], centre=True)
    torch.testing.assert_close(load_classifier(out)(x), model(x))


def test_classifier_bad_directory(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="no classifier here"):
        load_classifier(tmp_path)
    (tmp_path / "config.json").write_text((trained[1] / "config.json").read_text())
    (tmp_path / "model.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="model.pt: not weights of the classifier"):
        load_classifier(tmp_path)


@pytest.fixture(scope="module")
def flow(es):
    """A small 48x48 BPLF, initialised (not trained) on synthetic faces."""
    torch.manual_seed(0)
    model = build_model("bplf", levels=3, steps_per_level=1, hidden_channels=8)
    x = dequantize(es.select(split="train").subsample(600).images)
    model.initialize(x[:256], pca_x=x)
    return model.eval()


def test_fidelity_table_has_floor_ceiling_and_every_emotion(es, trained, flow):
    classifier, _ = trained
    rows = fidelity_table({"flow": flow, "floor": untrained_like(flow, es, n=600)}, classifier,
                          es, temperatures=(0.7, 1.0), n_per_emotion=20)
    assert [(r["generator"], r["temperature"]) for r in rows] == [
        ("real faces (ceiling)", None), ("flow", 0.7), ("flow", 1.0), ("floor", 0.7),
        ("floor", 1.0)]
    ceiling = rows[0]
    assert ceiling["accuracy"] > 0.5 and ceiling["n"] == (es.split == "test").sum()
    for r in rows:
        assert set(r["per_emotion_accuracy"]) == set(EMOTIONS)
        assert set(r["fd_per_emotion"]) == set(EMOTIONS)
        assert r["fd"] >= 0 and all(v >= 0 for v in r["fd_per_emotion"].values())
    # an untrained flow's samples are farther from real faces than real faces of other people
    assert min(r["fd"] for r in rows[1:]) > ceiling["fd"]


def test_shipped_classifier():
    report = json.loads((CLASSIFIER_DIR / "evaluation.json").read_text())
    assert set(report["sources"]) == {"fer2013", "ckplus", "jaffe"}
    assert report["sources"]["fer2013"]["accuracy"] > 0.55
    size = sum(p.stat().st_size for p in CLASSIFIER_DIR.iterdir())
    assert size < 4 * 2**20
    model = load_classifier()
    assert model.head[-1].out_features == 7


RAW = os.environ.get("BPLF_RAW_DIR")


@pytest.mark.skipif(not RAW or not (Path(RAW) / "fer2013.zip").exists(),
                    reason="the public datasets are not in BPLF_RAW_DIR")
def test_shipped_classifier_on_real_test_faces():
    test = load_emotion_set().select(source="fer2013", split="test").subsample(600, seed=2)
    pred = load_classifier()(dequantize(test.images, centre=True)).argmax(1).numpy()
    assert (pred == test.labels).mean() > 0.55


def test_edit_sweep_at_intensity_zero_reads_the_unchanged_faces(es, trained, flow):
    """Each face is edited toward the 6 other emotions: at intensity 0 the faces come back
    unchanged, so exactly the faces the classifier misreads hit one target in six, the edits
    are the inputs (SSIM 1, RMSE 0) and keep the person; a full edit changes the faces."""
    classifier, _ = trained
    faces = es.select(split="test").subsample(20)
    means = latent_means(flow, es, per_emotion=30)
    zero, full = edit_sweep(flow, classifier, faces.images, faces.labels,
                            [("mean", 1.0, (0.0, 1.5))], {"ssim": 0.6}, means)
    pred = predict_labels(classifier, faces.images)
    assert zero["n"] == 20 * 6 and zero["intensity"] == 0.0 and zero["method"] == "mean"
    assert zero["hit_rate"] == pytest.approx((pred != faces.labels).mean() / 6)
    assert zero["ssim"] == pytest.approx(1.0) and zero["rmse"] < 0.5 and zero["keeps_person"]
    assert full["ssim"] < zero["ssim"] and full["rmse"] > zero["rmse"]
    assert 0 <= full["joint_rate"] <= min(full["hit_rate"], full["face_rate"])
