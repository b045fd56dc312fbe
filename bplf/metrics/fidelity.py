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
* ``edit_accuracy``: the share of edits the classifier reads as their target, per intensity;
* ``identity_report``: how much of the person an edit keeps, SSIM and pixel RMSE between input
  and edited face, beside the same figures between two different real faces of the same emotion
  (the "different person" reference: an edit should stay well above its SSIM, below its RMSE).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bplf.data import EMOTIONS, EmotionSet
from bplf.editing import decode_edit, edit_expression, encode_for_edit, methods_for, sample_faces
from bplf.likelihood import dequantize, to_uint8
from bplf.metrics.classifier import EmotionCNN, predict
from bplf.model import BPLF, make_model
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


def _scores(classifier: EmotionCNN, x: torch.Tensor, y: np.ndarray) -> tuple[np.ndarray, dict]:
    """Features of model-space images, and balanced accuracy overall and per emotion."""
    feats = predict(classifier, x, features=True)
    pred = classifier.head(feats).argmax(1).numpy()
    per = {EMOTIONS[k]: float((pred[y == k] == k).mean()) for k in np.unique(y)}
    return feats.numpy(), {"accuracy": float(np.mean(list(per.values()))), "per_emotion": per}


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


def fidelity_table(generators: dict[str, BPLF], classifier: EmotionCNN, es: EmotionSet,
                   temperatures: tuple[float, ...] = (0.5, 0.7, 1.0), n_per_emotion: int = 500,
                   seed: int = 0, guidance: dict[str, tuple[float, ...]] | None = None
                   ) -> list[dict]:
    """The ceiling row (real faces), then one row per (generator, guidance, temperature), each
    with balanced accuracy and Fréchet distances to the real test faces, overall and per
    emotion. ``guidance`` maps a generator's name to the guidance scales it is sampled at
    (others: 1, plain samples); a scale above 1 needs a model trained with label dropout."""
    test, val = es.select(split="test"), es.select(split="val")
    # the ceiling: the classifier's accuracy on the real test faces themselves, and the
    # distance of real faces of other people (the val split) to them
    ref, acc = _scores(classifier, dequantize(test.images, centre=True), test.labels)
    weights = np.bincount(test.labels, minlength=len(EMOTIONS)) / len(test)
    feats, _ = _scores(classifier, dequantize(val.images, centre=True), val.labels)
    rows = [{"generator": CEILING, "temperature": None, "guidance": None, "n": len(test),
             **_compare(feats, val.labels, ref, test.labels, weights),
             "accuracy": acc["accuracy"], "per_emotion_accuracy": acc["per_emotion"]}]
    jobs = [(name, model, t, g) for name, model in generators.items()
            for g in (guidance or {}).get(name, (1.0,)) for t in temperatures]
    for name, model, t, g in progress(jobs, desc="fidelity"):
        images, y = sample_faces(model.eval(), n_per_emotion, t, seed, guidance=g)
        feats, acc = _scores(classifier, dequantize(images, centre=True), y)
        rows.append({"generator": name, "temperature": t, "guidance": g, "n": len(y),
                     **_compare(feats, y, ref, test.labels, weights),
                     "accuracy": acc["accuracy"], "per_emotion_accuracy": acc["per_emotion"]})
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


def as_frame(rows: list[dict], es: EmotionSet | None = None):
    """The fidelity rows as a table: one row per generator, guidance and temperature,
    per-emotion accuracy and Fréchet distance as columns. With ``es``, the ceiling row is
    labelled by what was loaded (``ceiling_label``). Rows saved before guidance existed are
    plain samples (guidance 1)."""
    import pandas as pd

    names = {CEILING: ceiling_label(es)} if es is not None else {}
    table = pd.DataFrame([{"generator": names.get(r["generator"], r["generator"]),
                           "guidance": r.get("guidance", None if r["temperature"] is None
                                             else 1.0),
                           "temperature": r["temperature"],
                           "accuracy": r["accuracy"], "fd": r["fd"],
                           **{f"acc {e}": a for e, a in r["per_emotion_accuracy"].items()},
                           **{f"fd {e}": d for e, d in r["fd_per_emotion"].items()}}
                          for r in rows])
    return table.set_index(["generator", "guidance", "temperature"])


@torch.no_grad()
def edit_accuracy(model: BPLF, classifier: EmotionCNN, images: np.ndarray, labels: np.ndarray,
                  means: list[torch.Tensor], intensities: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5),
                  method: str = "mean", guidance: float = 1.0) -> dict[float, float]:
    """Per intensity, the share of edits the classifier reads as their target, each uint8 face
    edited toward all 7 emotions. At intensity 0 the faces are unchanged, so the share is exactly
    1/7 (each face's one predicted emotion is the target of one edit in seven)."""
    x = dequantize(images, centre=True)
    source = torch.as_tensor(labels)
    k = model.config.num_classes
    zs = encode_for_edit(model, x, source, method, guidance)  # the same for every edit below
    shares = {}
    for intensity in intensities:
        hits = 0
        for target in range(k):
            edited = decode_edit(model, zs, source, target, intensity, method, means, guidance)
            pred = predict(classifier, dequantize(to_uint8(edited)[:, 0].cpu(), centre=True))
            hits += int((pred.argmax(1) == target).sum())
        shares[intensity] = hits / (len(x) * k)
    return shares


def generative_accuracy(log_probs: torch.Tensor | np.ndarray, labels: np.ndarray) -> dict:
    """The flow as a classifier: accuracy of argmax_y log p(x | y) given the (N, K) matrix of
    per-class log-likelihoods (``bplf.evaluate.log_prob_per_class``), overall, balanced (the
    mean of the per-emotion accuracies) and per emotion."""
    pred = np.asarray(torch.as_tensor(log_probs).argmax(1).cpu())
    labels = np.asarray(labels)
    per = {EMOTIONS[k]: float((pred[labels == k] == k).mean()) for k in np.unique(labels)}
    return {"n": int(len(labels)), "accuracy": float((pred == labels).mean()) if len(labels)
            else float("nan"), "balanced_accuracy": float(np.mean(list(per.values())))
            if per else float("nan"), "per_emotion": per}


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window of sigma 1.5, K1 = 0.01,
    K2 = 0.03, valid region) of uint8 images (N, H, W) pairwise -> (N,); 1 = identical."""
    x = torch.as_tensor(np.array(a, dtype=np.float64))[:, None]
    y = torch.as_tensor(np.array(b, dtype=np.float64))[:, None]
    w = _gaussian_window(min(11, x.shape[-1]))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    vx = F.conv2d(x * x, w) - mx**2
    vy = F.conv2d(y * y, w) - my**2
    cov = F.conv2d(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).numpy()


def rmse(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pixel RMSE of uint8 images (N, H, W) pairwise, in grey levels -> (N,)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.sqrt((d**2).reshape(len(d), -1).mean(1))


def same_emotion_pairs(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, of two different faces of the same emotion (each face of an
    emotion with at least 2 faces paired with another one, drawn with ``seed``)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        if len(idx) >= 2:
            first.append(idx)
            second.append(np.roll(idx, 1))
    if not first:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(first), np.concatenate(second)


@torch.no_grad()
def identity_report(model: BPLF, images: np.ndarray, labels: np.ndarray,
                    means: list[torch.Tensor] | None = None, method: str = "mean",
                    intensity: float = 1.0, guidance: float = 1.0, seed: int = 0) -> dict:
    """How much of the person an edit keeps: mean SSIM and pixel RMSE between each uint8 face
    and its edit toward another emotion (face i toward ``(label + 1 + i % (K-1)) % K``), beside
    the same figures between two different real faces of the same emotion (the "different
    person" reference, ``same_emotion_pairs``)."""
    k = model.config.num_classes
    labels = np.asarray(labels)
    target = (labels + 1 + np.arange(len(labels)) % max(k - 1, 1)) % k
    x = dequantize(images, centre=True)
    edited = edit_expression(model, x, torch.as_tensor(labels), torch.as_tensor(target),
                             intensity, method, means, guidance)
    out = to_uint8(edited)[:, 0].cpu().numpy()
    i, j = same_emotion_pairs(labels, seed)
    return {"n": int(len(labels)), "method": method, "intensity": intensity,
            "guidance": guidance,
            "edit_ssim": float(ssim(images, out).mean()),
            "edit_rmse": float(rmse(images, out).mean()),
            "different_person_ssim": float(ssim(images[i], images[j]).mean()) if len(i)
            else float("nan"),
            "different_person_rmse": float(rmse(images[i], images[j]).mean()) if len(i)
            else float("nan")}


def keeps_person(identity: dict) -> bool:
    """Whether an edit keeps the person (an ``identity_report``): closer to its input than two
    different real faces of one emotion are to each other, in SSIM (above) and RMSE (below)."""
    return (identity["edit_ssim"] > identity["different_person_ssim"]
            and identity["edit_rmse"] < identity["different_person_rmse"])


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` independent trials."""
    return float(np.sqrt(p * (1 - p) / n))


def edits_frame(edits: list[dict]):
    """``edit_report``'s entries as a table: one row per method and guidance, the hit-rate per
    intensity, SSIM and RMSE to the input at intensity 1, and whether the person is kept."""
    import pandas as pd

    return pd.DataFrame([{"method": e["method"], "guidance": e["guidance"],
                          **{f"hit x{a}": h for a, h in e["hit_rate"].items()},
                          "SSIM": e["identity"]["edit_ssim"], "RMSE": e["identity"]["edit_rmse"],
                          "keeps the person": keeps_person(e["identity"])}
                         for e in edits]).set_index(["method", "guidance"])


def edit_report(model: BPLF, classifier: EmotionCNN, images: np.ndarray, labels: np.ndarray,
                means: list[torch.Tensor] | None = None,
                intensities: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5),
                guidance: tuple[float, ...] = (1.0,)) -> list[dict]:
    """One entry per editing method the model supports (``mean`` only with ``means``) and, for
    ``swap``, per guidance scale: the edit hit-rate per intensity (``edit_accuracy``) and the
    identity kept at intensity 1 (``identity_report``)."""
    report = []
    for method in methods_for(model):
        if method == "mean" and means is None:
            continue
        for g in guidance if method == "swap" else (1.0,):
            hits = edit_accuracy(model, classifier, images, labels, means, intensities, method,
                                 g)
            report.append({"method": method, "guidance": g,
                           "hit_rate": {str(t): v for t, v in hits.items()},
                           "identity": identity_report(model, images, labels, means, method,
                                                       1.0, g)})
    return report
