"""Evaluating a trained flow on the emotion set: bits per dimension and the flow's own
classification accuracy per source, round trips of every test face, and (with the classifier)
fidelity of samples and of edits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from bplf.data import EMOTIONS, load_emotion_set
from bplf.likelihood import bpd_from_log_prob, dequantize, to_uint8
from bplf.model import BPLF, DensityModel
from bplf.utils import progress


@torch.no_grad()
def log_prob_per_class(model: BPLF, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, K) matrix of log p(x | y=k) in nats, for every class k."""
    model.eval()
    return torch.cat([model.log_prob_classes(x[i : i + batch_size])
                      for i in range(0, len(x), batch_size)])


@torch.no_grad()
def bpd_report(model: BPLF, images: np.ndarray, labels: np.ndarray,
               class_prior: np.ndarray | None = None, seed: int = 0,
               device: torch.device | str | None = None) -> dict:
    """Test bpd of uint8 faces under one fixed-seed dequantisation.

    ``conditional``: -log2 p(x | true emotion); ``marginal``: the emotion summed out,
    p(x) = sum_k p(k) p(x | k), with ``class_prior`` p(k) (uniform if None) — the number to
    compare with unconditional models. ``generative_accuracy``: the flow as a classifier,
    argmax_y log p(x | y) (``bplf.metrics.fidelity.generative_accuracy``).
    """
    from bplf.metrics.fidelity import generative_accuracy

    device = torch.device(device) if device else next(model.parameters()).device
    x = dequantize(images, generator=torch.Generator().manual_seed(seed)).to(device)
    dims = x[0].numel()
    lp = log_prob_per_class(model, x).cpu().double()
    k = lp.shape[1]
    prior = torch.full((k,), 1.0 / k, dtype=torch.float64) if class_prior is None else \
        torch.as_tensor(class_prior, dtype=torch.float64)
    marginal = torch.logsumexp(lp + prior.log(), dim=1)
    conditional = lp[torch.arange(len(lp)), torch.as_tensor(labels)]
    return {"n": int(len(lp)),
            "marginal_bpd": float(bpd_from_log_prob(marginal, dims).mean()),
            "conditional_bpd": float(bpd_from_log_prob(conditional, dims).mean()),
            "generative_accuracy": generative_accuracy(lp, np.asarray(labels))}


@torch.no_grad()
def round_trip_report(model: DensityModel, images: np.ndarray,
                      device: torch.device | str | None = None, batch_size: int = 256) -> dict:
    """Encode and decode every face of ``images`` (uint8, centred dequantisation: the
    deterministic model-space image) and report how exactly they come back.

    ``max_abs_error`` and ``worst_index``: the worst face (inf where a decode is not finite);
    ``not_uint8_identical``: faces whose decoded image quantises to another uint8 image;
    ``nonfinite``: faces that decode to NaN or inf.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    errors, identical = [], []
    for i in progress(range(0, len(images), batch_size), desc="round trips"):
        x = dequantize(images[i : i + batch_size], centre=True).to(device)
        back = model.decode(model.encode(x))
        err = (back - x).abs().flatten(1).amax(1)
        err[~torch.isfinite(back).flatten(1).all(1)] = math.inf
        errors.append(err.cpu())
        identical.append((to_uint8(back) == to_uint8(x)).flatten(1).all(1).cpu())
    err, same = torch.cat(errors), torch.cat(identical)
    worst = int(err.argmax()) if len(err) else -1
    return {"n": int(len(err)), "max_abs_error": float(err.max()) if len(err) else 0.0,
            "worst_index": worst, "not_uint8_identical": int((~same).sum()),
            "nonfinite": int((~torch.isfinite(err)).sum())}


def evaluate_checkpoint(path: Path | str, split: str = "test", limit: int | None = None,
                        device: torch.device | str | None = None,
                        classifier: Path | str | None = None, n_per_emotion: int = 0,
                        temperatures: tuple[float, ...] = (0.5, 0.7, 1.0),
                        edit_faces: int = 100, guidance: float = 1.0) -> dict:
    """Per-source and overall bpd on ``split`` and the round trip of every face evaluated
    (``round_trip_report``), for a run directory;
    with ``n_per_emotion`` > 0 also the fidelity table (``bplf.metrics.fidelity``) of this model
    and of its untrained floor, judged by the classifier in ``classifier`` (default: shipped),
    and the edit metrics (``fidelity.edit_report``: hit-rate per intensity and identity kept,
    every editing method the model supports, ``guidance`` for swap) on ``edit_faces`` faces."""
    from bplf.train import load_checkpoint

    model = load_checkpoint(path, device)
    es = load_emotion_set()
    train_labels = es.select(split="train").labels
    prior = np.bincount(train_labels, minlength=len(EMOTIONS)) / len(train_labels)
    data = es.select(split=split)
    report: dict = {"checkpoint": Path(path).name, "split": split, "bits": 8,
                    "class_prior": "train-split emotion frequencies", "sources": {}}
    weighted, total, evaluated = 0.0, 0, []
    for source in sorted(set(data.source)):
        sub = data.select(source=source)
        if limit:
            sub = sub.subsample(limit)
        r = bpd_report(model, sub.images, sub.labels, prior, device=device)
        report["sources"][source] = r
        weighted += r["marginal_bpd"] * r["n"]
        total += r["n"]
        evaluated.append(sub.images)
    report["overall_marginal_bpd"] = weighted / total if total else math.nan
    # every evaluated face: the rare ones that float32 cannot invert are what this is for
    report["round_trip"] = round_trip_report(model, np.concatenate(evaluated), device)
    report["round_trip_max_abs_error"] = report["round_trip"]["max_abs_error"]
    if n_per_emotion > 0:
        from bplf.metrics import load_classifier
        from bplf.metrics.fidelity import FLOOR, fidelity_table, untrained_like

        generators = {Path(path).name: model, FLOOR: untrained_like(model, es)}
        judge = load_classifier(classifier, device)
        report["fidelity"] = fidelity_table(generators, judge, es, temperatures, n_per_emotion)
        if edit_faces > 0 and hasattr(model, "top_prior"):  # a BPLF (the peers cannot edit)
            from bplf.editing import latent_means
            from bplf.metrics.fidelity import edit_report

            faces = data.subsample(edit_faces, seed=0)
            means = latent_means(model, es, per_emotion=200)
            report["edits"] = edit_report(model, judge, faces.images, faces.labels, means,
                                          guidance=guidance)
    return report
