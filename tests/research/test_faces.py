"""bplf.research.metrics.faces: what a person sees (a face found, the same person, diversity),
checked against the libraries the field uses (scikit-image's SSIM, prdc's precision and recall)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bplf.data import EmotionSet, load_emotion_set
from bplf.research.metrics.faces import (
    face_found,
    joint_rate,
    keeps_person,
    pair_ssim,
    precision_recall,
    same_person_pairs,
    same_person_reference,
    ssim,
)

RAW = os.environ.get("BPLF_RAW_DIR")
REAL = pytest.mark.skipif(not RAW or not (Path(RAW) / "fer2013.zip").exists(),
                          reason="the public datasets are not in BPLF_RAW_DIR")


@REAL
def test_the_cascade_finds_real_faces_and_not_noise_or_flat_grey():
    test = load_emotion_set().select(split="test", source="fer2013")
    rate = face_found(test.images).mean()  # every FER-2013 test face
    assert 0.45 < rate < 0.75, rate  # about 59%: a frontal-face cascade misses turned heads
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 48, 48), dtype=np.uint8)
    grey = np.full((50, 48, 48), 128, dtype=np.uint8)
    assert face_found(noise).mean() < 0.05 and not face_found(grey).any()


@REAL
def test_same_person_reference_on_real_subjects():
    es = load_emotion_set()
    i, j = same_person_pairs(es)
    assert len(i) == 2000
    assert (es.subject[i] == es.subject[j]).all() and (es.source[i] == es.source[j]).all()
    assert (es.labels[i] != es.labels[j]).all() and set(es.source[i]) == {"ckplus", "jaffe"}
    ref = same_person_reference(es)
    # closer than two different people of one emotion (about 0.07), not identical
    assert 0.45 < ref["ssim"] < 0.8 and 10 < ref["rmse"] < 60


def _set(subjects, labels, sources):
    rng = np.random.default_rng(1)
    n = len(labels)
    return EmotionSet(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), np.array(labels),
                      np.array(sources), np.array(subjects), np.array(["test"] * n))


def test_same_person_pairs_never_mix_subjects_or_share_an_expression():
    es = _set(["a", "a", "a", "b", "b", "", ""], [0, 0, 3, 1, 1, 2, 5],
              ["ckplus", "ckplus", "ckplus", "jaffe", "jaffe", "fer2013", "fer2013"])
    i, j = same_person_pairs(es)
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 2), (1, 2)]
    # subject "b" shows one expression twice: no pair; unknown subjects never pair
    none = same_person_reference(_set(["", ""], [0, 1], ["fer2013"] * 2))
    assert none["n"] == 0 and np.isnan(none["ssim"])
    assert not keeps_person(0.99, none)
    assert keeps_person(0.7, {"ssim": 0.62}) and not keeps_person(0.5, {"ssim": 0.62})


def test_joint_rate_never_exceeds_either_factor():
    rng = np.random.default_rng(0)
    for _ in range(50):
        found, read = rng.random(40) < rng.random(), rng.random(40) < rng.random()
        j = joint_rate(found, read)
        assert j <= found.mean() and j <= read.mean()
        assert j == pytest.approx((found & read).mean())


def test_ssim_agrees_with_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (6, 48, 48), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-60, 60, a.shape), 0, 255).astype(np.uint8)
    ours = ssim(a, b)
    ref = [structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255)
           for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_pair_ssim_sees_prototypes():
    rng = np.random.default_rng(0)
    varied = rng.integers(0, 256, (20, 48, 48), dtype=np.uint8)
    labels = np.repeat([0, 1], 10)
    one_face = np.repeat(varied[:1], 20, axis=0)
    assert pair_ssim(varied, labels) < 0.1 and pair_ssim(one_face, labels) == pytest.approx(1.0)


def test_precision_recall_agree_with_prdc():
    from prdc import compute_prdc

    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    fake = rng.normal(loc=0.7, scale=0.6, size=(200, 8))  # narrower, shifted: recall falls
    ours = precision_recall(real, fake, k=3, chunk=64)
    ref = compute_prdc(real_features=real, fake_features=fake, nearest_k=3)
    assert ours["precision"] == pytest.approx(ref["precision"])
    assert ours["recall"] == pytest.approx(ref["recall"])
    assert ours["recall"] < 0.9 * precision_recall(real, real[::-1].copy())["recall"]
