"""Expression fidelity of a class-conditional generator, judged by the emotion classifier.

Two numbers per generator, overall and per emotion:

* **accuracy**: the classifier's accuracy on samples drawn for each emotion (n per emotion, so
  chance is 1/7 = 14.3%); for real faces, the mean of the per-emotion accuracies, the same
  balanced measure;
* **Fréchet distance** between samples and real test faces in the classifier's penultimate
  feature space (the FID recipe with this classifier in place of Inception).

Generated images go through the same 8-bit quantisation as real ones before the classifier
sees them. Reference rows: real faces (the ceiling: the classifier's accuracy on the test faces,
and the distance from the val faces, other people of the same distribution, to them) and an
untrained model (the floor).

And for any class-conditional flow (``python -m bplf evaluate`` reports them):

* ``generative_accuracy``: the flow itself as a classifier, argmax_y log p(x | y) on test faces;
* ``edit_sweep``: per editing method, guidance and intensity, the share of edits the classifier
  reads as their target, what a person sees of them, and how much of the person they keep
  (SSIM and RMSE to the input, judged by the one rule ``faces.keeps_person``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from bplf.data import EMOTIONS, EmotionSet
from bplf.editing import decode_edit, encode_for_edit, sample_faces
from bplf.guidance import Guidance
from bplf.likelihood import dequantize, to_uint8
from bplf.model import BPLF, make_model
from bplf.research.metrics.classifier import EmotionCNN, predict
from bplf.research.metrics.faces import (
    face_found,
    face_report,
    keeps_person,
    precision_recall,
    rmse,
    ssim,
)
from bplf.utils import progress


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) of two feature sets
    (rows are samples). Computed with symmetric eigendecompositions: exact and stable for the
    rank-deficient covariances of small sets."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ sb @ root_a), 0, None)).sum()
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * cross)


def _scores(classifier: EmotionCNN, x: torch.Tensor, y: np.ndarray
            ) -> tuple[np.ndarray, dict, np.ndarray]:
    """Features of model-space images, balanced accuracy overall and per emotion, and per
    image whether the classifier reads its emotion."""
    feats = predict(classifier, x, features=True)
    pred = classifier.head(feats).argmax(1).numpy()
    per = {EMOTIONS[k]: float((pred[y == k] == k).mean()) for k in np.unique(y)}
    return (feats.numpy(), {"accuracy": float(np.mean(list(per.values()))), "per_emotion": per},
            pred == y)


def _compare(feats: np.ndarray, y: np.ndarray, ref: np.ndarray, ref_y: np.ndarray,
             weights: np.ndarray) -> dict:
    """Fréchet distance to the reference overall (the generated set resampled to the
    reference's emotion mix) and per emotion."""
    per = {EMOTIONS[k]: frechet_distance(feats[y == k], ref[ref_y == k])
           for k in np.unique(y) if (ref_y == k).sum() >= 2}
    n_k = np.bincount(y, minlength=len(weights))
    total = int(np.floor(min(n_k[k] / w for k, w in enumerate(weights) if w > 0)))
    take = np.concatenate([np.flatnonzero(y == k)[: int(round(w * total))]
                           for k, w in enumerate(weights)])
    return {"fd": frechet_distance(feats[take], ref), "fd_per_emotion": per}


#: the generator names of the reference rows: real test faces, and an untrained model (the
#: rows' keys in reports; ``ceiling_label`` is the ceiling's name for the data actually loaded)
CEILING = "real faces (ceiling)"
FLOOR = "untrained (floor)"


def faces_word(es: EmotionSet) -> str:
    """What the loaded faces are, for labels: "real", or "synthetic" on the procedural fallback."""
    return "synthetic" if es.synthetic else "real"


def ceiling_label(es: EmotionSet) -> str:
    """The ceiling row's label for the faces loaded: "synthetic faces (ceiling)" when there was
    no data."""
    return f"{faces_word(es)} faces (ceiling)"


def _person_columns(images: np.ndarray, y: np.ndarray, read: np.ndarray, feats: np.ndarray,
                    ref: np.ndarray) -> dict:
    """What a person sees (``bplf.research.metrics.faces``) beside the classifier's figures: face,
    reading and joint rates, pair SSIM, and precision and recall against the reference."""
    faces = face_report(images, y, read)
    return {k: faces[k] for k in ("face_rate", "read_rate", "joint_rate", "pair_ssim",
                                  "per_emotion_joint")} | precision_recall(ref, feats)


def _denoised(model, setting: tuple) -> bool:
    """Whether a (…, denoised) setting's samples take the denoising step; the peers never do."""
    return isinstance(model, BPLF) and model.denoises(setting[0] if setting else None)


def fidelity_table(generators: dict[str, BPLF], classifier: EmotionCNN, es: EmotionSet,
                   temperatures: tuple[float, ...] = (0.5, 0.7, 1.0), n_per_emotion: int = 500,
                   seed: int = 0, guidance: dict[str, tuple] | None = None,
                   settings: dict[str, list[tuple]] | None = None) -> list[dict]:
    """The ceiling row (real faces), then one row per (generator, guidance, temperature), each
    with balanced accuracy and Fréchet distances to the real test faces, overall and per
    emotion, and what a person sees (face rate, joint rate, pair SSIM, precision and recall;
    ``bplf.research.metrics.faces``). ``guidance`` maps a generator's name to the guidance (numbers:
    the coupling rule, or ``Guidance`` objects) it is sampled with at every temperature;
    ``settings`` to exact (temperature, guidance) pairs or (temperature, guidance, denoised)
    triples instead (denoised: one Tweedie step after sampling, ``BPLF.denoise``; without it, as
    the model samples by default, ``BPLF.denoises``); others: the default samples at every
    temperature. Each row says whether it was ``denoised``."""
    test, val = es.select(split="test"), es.select(split="val")
    # the ceiling: the classifier's accuracy on the real test faces themselves, and the
    # distance of real faces of other people (the val split) to them
    ref, acc, read = _scores(classifier, dequantize(test.images, centre=True), test.labels)
    weights = np.bincount(test.labels, minlength=len(EMOTIONS)) / len(test)
    feats, _, _ = _scores(classifier, dequantize(val.images, centre=True), val.labels)
    rows = [{"generator": CEILING, "temperature": None, "guidance": None, "n": len(test),
             **_compare(feats, val.labels, ref, test.labels, weights),
             "accuracy": acc["accuracy"], "per_emotion_accuracy": acc["per_emotion"],
             **_person_columns(test.images, test.labels, read, feats, ref)}]
    jobs = []
    for name, model in generators.items():
        pairs = (settings or {}).get(name) or [
            (t, g) for g in (guidance or {}).get(name, (1.0,)) for t in temperatures]
        jobs += [(name, model, p[0], Guidance.of(p[1]), _denoised(model, p[2:]))
                 for p in pairs]
    for name, model, t, g, denoised in progress(jobs, desc="fidelity"):
        images, y = sample_faces(model.eval(), n_per_emotion, t, seed, guidance=g,
                                 denoise=denoised)
        images = images.numpy()
        feats, acc, read = _scores(classifier, dequantize(images, centre=True), y)
        rows.append({"generator": name, "temperature": t, "guidance": g.label(),
                     "guidance_config": g.to_dict(), "denoised": denoised, "n": len(y),
                     **_compare(feats, y, ref, test.labels, weights),
                     "accuracy": acc["accuracy"], "per_emotion_accuracy": acc["per_emotion"],
                     **_person_columns(images, y, read, feats, ref)})
    return rows


def untrained_like(model: BPLF, es: EmotionSet, n: int = 4096, seed: int = 0) -> BPLF:
    """The floor: the same architecture with only its data-dependent initialisation (PCA fit and
    ActNorm on ``n`` training faces), no training step."""
    torch.manual_seed(seed)
    fresh = make_model(model.config).to(next(model.parameters()).device)
    train = es.select(split="train").subsample(n, seed=seed)
    x = dequantize(train.images, generator=torch.Generator().manual_seed(seed)).to(
        next(fresh.parameters()).device)
    with torch.no_grad():
        fresh.initialize(x[:1024], pca_x=x)
    return fresh.eval()


def guidance_name(value) -> str | None:
    """A row's guidance as a label (``Guidance.label``): rows written before the ``Guidance``
    object held the coupling rule's scale as a number."""
    if value is None or isinstance(value, str):
        return value
    return Guidance.of(value).label()


#: the columns of what a person sees, in the order tables show them
PERSON_COLUMNS = ("face_rate", "joint_rate", "pair_ssim", "precision", "recall")


def as_frame(rows: list[dict], es: EmotionSet | None = None):
    """The fidelity rows as a table: one row per generator, guidance and temperature,
    accuracy, FD, what a person sees (where measured), and per-emotion accuracy and Fréchet
    distance as columns. With ``es``, the ceiling row is labelled by what was loaded
    (``ceiling_label``)."""
    names = {CEILING: ceiling_label(es)} if es is not None else {}
    table = pd.DataFrame([{"generator": names.get(r["generator"], r["generator"]),
                           "guidance": guidance_name(r.get("guidance", None
                                                           if r["temperature"] is None
                                                           else 1.0)),
                           "temperature": r["temperature"],
                           "accuracy": r["accuracy"], "fd": r["fd"],
                           **{c: r[c] for c in PERSON_COLUMNS if c in r},
                           **{f"acc {e}": a for e, a in r["per_emotion_accuracy"].items()},
                           **{f"fd {e}": d for e, d in r["fd_per_emotion"].items()}}
                          for r in rows])
    return table.set_index(["generator", "guidance", "temperature"])


def generative_accuracy(log_probs: torch.Tensor | np.ndarray, labels: np.ndarray) -> dict:
    """The flow as a classifier: accuracy of argmax_y log p(x | y) given the (N, K) matrix of
    per-class log-likelihoods (``bplf.research.evaluate.log_prob_per_class``), overall, balanced
    (the mean of the per-emotion accuracies) and per emotion."""
    pred = np.asarray(torch.as_tensor(log_probs).argmax(1).cpu())
    labels = np.asarray(labels)
    per = {EMOTIONS[k]: float((pred[labels == k] == k).mean()) for k in np.unique(labels)}
    return {"n": int(len(labels)), "accuracy": float((pred == labels).mean()) if len(labels)
            else float("nan"), "balanced_accuracy": float(np.mean(list(per.values())))
            if per else float("nan"), "per_emotion": per}


@torch.no_grad()
def edit_sweep(model: BPLF, classifier: EmotionCNN, images: np.ndarray, labels: np.ndarray,
               settings: list[tuple[str, Guidance | float, tuple[float, ...]]],
               reference: dict, means: list[torch.Tensor] | None = None,
               denoise: tuple[bool | None, ...] = (None,)) -> list[dict]:
    """Every face of ``images`` (uint8, emotions ``labels``) edited toward each of the other
    emotions, for each (method, guidance, intensities) of ``settings``: one row per method,
    guidance and intensity with the hit-rate (the classifier reads the target), the face rate
    of the edits, the joint hit-rate (a face *and* the target), SSIM and RMSE to the input and
    whether that keeps the person by the same-person ``reference``
    (``faces.same_person_reference``). ``denoise``: each edit decoded plain (False) and/or
    followed by one Tweedie step given the target (True, ``editing.decode_edit``); None: as the
    editors do by default (plain)."""
    labels = np.asarray(labels)
    k = model.config.num_classes
    x = dequantize(images, centre=True)
    rows = []
    for method, guidance, intensities in progress(settings, desc="edits"):
        guidance = Guidance.of(guidance)
        start = encode_for_edit(model, x, torch.as_tensor(labels), method, guidance)
        edited = {(a, d): [] for a in intensities for d in dict.fromkeys(map(bool, denoise))}
        targets = []
        for offset in range(1, k):
            target = (labels + offset) % k
            targets.append(target)
            for a, d in edited:
                out = decode_edit(model, start, torch.as_tensor(target), a, means, denoise=d)
                edited[a, d].append(to_uint8(out)[:, 0].cpu().numpy())
        target = np.concatenate(targets)
        inputs = np.concatenate([images] * (k - 1))
        for (a, d), parts in edited.items():
            out = np.concatenate(parts)
            pred = predict(classifier, dequantize(out, centre=True)).argmax(1).numpy()
            read, found = pred == target, face_found(out)
            edit_ssim = float(ssim(inputs, out).mean())
            rows.append({"method": method, "guidance": guidance.label(),
                         "guidance_config": guidance.to_dict(), "intensity": a, "denoised": d,
                         "n": int(len(out)), "hit_rate": float(read.mean()),
                         "face_rate": float(found.mean()),
                         "joint_rate": float((read & found).mean()), "ssim": edit_ssim,
                         "rmse": float(rmse(inputs, out).mean()),
                         "keeps_person": keeps_person(edit_ssim, reference)})
    return rows


def edits_frame(rows: list[dict]):
    """``edit_sweep``'s rows as a table: one row per method, guidance and intensity."""
    columns = ["hit_rate", "face_rate", "joint_rate", "ssim", "rmse", "keeps_person"]
    return (pd.DataFrame(rows).set_index(["method", "guidance", "intensity"])[columns])
