"""Evaluating a trained flow on the emotion set: bits per dimension per source, round trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from bplf.data import EMOTIONS, load_emotion_set
from bplf.likelihood import bpd_from_log_prob, dequantize
from bplf.model import BPLF


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
    compare with unconditional models.
    """
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
            "conditional_bpd": float(bpd_from_log_prob(conditional, dims).mean())}


@torch.no_grad()
def round_trip_error(model: BPLF, images: np.ndarray, labels: np.ndarray,
                     device: torch.device | str | None = None) -> float:
    """max |decode(encode(x)) - x| over real faces (should be ~1e-5 in float32)."""
    device = torch.device(device) if device else next(model.parameters()).device
    x = dequantize(images, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.as_tensor(labels, device=device)
    worst = 0.0
    for i in range(0, len(x), 256):
        xb, yb = x[i : i + 256], y[i : i + 256]
        worst = max(worst, float((model.decode(model.encode(xb, yb), yb) - xb).abs().max()))
    return worst


def evaluate_checkpoint(path: Path | str, split: str = "test", limit: int | None = None,
                        device: torch.device | str | None = None,
                        classifier: Path | str | None = None, n_per_emotion: int = 0,
                        temperatures: tuple[float, ...] = (0.5, 0.7, 1.0)) -> dict:
    """Per-source and overall bpd on ``split`` and the round-trip error, for a run directory;
    with ``n_per_emotion`` > 0 also the fidelity table (``bplf.metrics.fidelity``) of this model
    and of its untrained floor, judged by the classifier in ``classifier`` (default: shipped)."""
    from bplf.train import load_checkpoint

    model = load_checkpoint(path, device)
    es = load_emotion_set()
    train_labels = es.select(split="train").labels
    prior = np.bincount(train_labels, minlength=len(EMOTIONS)) / len(train_labels)
    data = es.select(split=split)
    report: dict = {"checkpoint": Path(path).name, "split": split, "bits": 8,
                    "class_prior": "train-split emotion frequencies", "sources": {}}
    weighted, total = 0.0, 0
    for source in sorted(set(data.source)):
        sub = data.select(source=source)
        if limit:
            sub = sub.subsample(limit)
        r = bpd_report(model, sub.images, sub.labels, prior, device=device)
        report["sources"][source] = r
        weighted += r["marginal_bpd"] * r["n"]
        total += r["n"]
    report["overall_marginal_bpd"] = weighted / total if total else math.nan
    sample = data.subsample(min(len(data), 512))
    report["round_trip_max_abs_error"] = round_trip_error(model, sample.images, sample.labels,
                                                          device)
    if n_per_emotion > 0:
        from bplf.metrics import load_classifier
        from bplf.metrics.fidelity import FLOOR, fidelity_table, untrained_like

        generators = {Path(path).name: model, FLOOR: untrained_like(model, es)}
        report["fidelity"] = fidelity_table(generators, load_classifier(classifier, device), es,
                                            temperatures, n_per_emotion)
    return report
