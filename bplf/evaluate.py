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
                      device: torch.device | str | None = None, batch_size: int = 256,
                      labels: np.ndarray | None = None) -> dict:
    """Encode and decode every face of ``images`` (uint8, centred dequantisation: the
    deterministic model-space image) and report how exactly they come back. A model whose map
    depends on the emotion (label-conditioned couplings) is run with ``labels``, each face's
    own emotion.

    ``max_abs_error`` and ``worst_index``: the worst face (inf where a decode is not finite);
    ``not_uint8_identical``: faces whose decoded image quantises to another uint8 image;
    ``nonfinite``: faces that decode to NaN or inf.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    model.eval()
    if getattr(model, "map_depends_on_label", False) and labels is None:
        raise ValueError("this model's map depends on the emotion: pass the faces' labels")
    errors, identical = [], []
    for i in progress(range(0, len(images), batch_size), desc="round trips"):
        x = dequantize(images[i : i + batch_size], centre=True).to(device)
        y = (torch.as_tensor(labels[i : i + batch_size], device=device)
             if getattr(model, "map_depends_on_label", False) else None)
        back = model.decode(model.encode(x, y), y)
        err = (back - x).abs().flatten(1).amax(1)
        err[~torch.isfinite(back).flatten(1).all(1)] = math.inf
        errors.append(err.cpu())
        identical.append((to_uint8(back) == to_uint8(x)).flatten(1).all(1).cpu())
    err, same = torch.cat(errors), torch.cat(identical)
    worst = int(err.argmax()) if len(err) else -1
    return {"n": int(len(err)), "max_abs_error": float(err.max()) if len(err) else 0.0,
            "worst_index": worst, "not_uint8_identical": int((~same).sum()),
            "nonfinite": int((~torch.isfinite(err)).sum())}


#: a sampling setting is recommended only if its Fréchet distance is within this factor of the
#: model's lowest: fidelity bought with faces that stop looking real does not count
FD_TOLERANCE = 1.5


def recommend(report: dict) -> dict:
    """The settings to use, from an ``evaluate_checkpoint`` report with fidelity and edits.

    ``samples``: among the model's temperatures in [0.5, 1] and guidance scales, the highest
    sample fidelity whose FD is within ``FD_TOLERANCE`` of the model's lowest; ``edits``: the
    method and guidance with the highest hit-rate at intensity 1 among those that keep the
    person (SSIM to the input above, RMSE below, two different real faces of one emotion)."""
    rows = [r for r in report["fidelity"] if r["generator"] == report["checkpoint"]
            and 0.5 <= r["temperature"] <= 1.0]
    lowest = min(r["fd"] for r in rows)
    best = max((r for r in rows if r["fd"] <= FD_TOLERANCE * lowest),
               key=lambda r: r["accuracy"])
    out = {"samples": {k: best[k] for k in ("temperature", "guidance", "accuracy", "fd")},
           "fd_tolerance": FD_TOLERANCE}
    from bplf.metrics.fidelity import keeps_person

    kept = [e for e in report.get("edits", []) if keeps_person(e["identity"])]
    if kept:
        e = max(kept, key=lambda e: e["hit_rate"]["1.0"])
        out["edits"] = {"method": e["method"], "guidance": e["guidance"],
                        "hit_rate": e["hit_rate"]["1.0"],
                        "ssim": e["identity"]["edit_ssim"], "rmse": e["identity"]["edit_rmse"],
                        "different_person_ssim": e["identity"]["different_person_ssim"],
                        "different_person_rmse": e["identity"]["different_person_rmse"]}
    return out


def evaluate_checkpoint(path: Path | str, split: str = "test", limit: int | None = None,
                        device: torch.device | str | None = None,
                        classifier: Path | str | None = None, n_per_emotion: int = 0,
                        temperatures: tuple[float, ...] = (0.5, 0.7, 1.0),
                        edit_faces: int = 200, guidance: tuple[float, ...] = (1.0,)) -> dict:
    """Per-source and overall bpd on ``split``, the flow's own classifier per source
    (``bpd_report``), and the round trip of every face evaluated (``round_trip_report``), for a
    run directory. With ``n_per_emotion`` > 0 also the fidelity table
    (``bplf.metrics.fidelity``) of this model at every temperature and guidance scale and of
    its untrained floor, judged by the classifier in ``classifier`` (default: shipped); the
    edit metrics (``fidelity.edit_report``: hit-rate per intensity and identity kept, every
    editing method the model supports, each guidance scale for swap) on ``edit_faces`` faces;
    and the ``recommend``-ed settings. A guidance scale above 1 needs a run trained with label
    dropout (its null label is what guidance extrapolates from)."""
    from bplf.train import load_checkpoint, load_run_config

    model = load_checkpoint(path, device)
    guidance = tuple(guidance)
    if any(g != 1.0 for g in guidance) and load_run_config(path)[1].label_dropout == 0:
        raise ValueError(f"{path}: trained without label dropout, so it has no null label to "
                         f"guide from; evaluate it at guidance 1 only (got {guidance})")
    es = load_emotion_set()
    train_labels = es.select(split="train").labels
    prior = np.bincount(train_labels, minlength=len(EMOTIONS)) / len(train_labels)
    data = es.select(split=split)
    report: dict = {"checkpoint": Path(path).name, "split": split, "bits": 8,
                    "class_prior": "train-split emotion frequencies", "sources": {}}
    weighted, total, evaluated, evaluated_labels = 0.0, 0, [], []
    for source in sorted(set(data.source)):
        sub = data.select(source=source)
        if limit:
            sub = sub.subsample(limit)
        r = bpd_report(model, sub.images, sub.labels, prior, device=device)
        report["sources"][source] = r
        weighted += r["marginal_bpd"] * r["n"]
        total += r["n"]
        evaluated.append(sub.images)
        evaluated_labels.append(sub.labels)
    report["overall_marginal_bpd"] = weighted / total if total else math.nan
    # every evaluated face: the rare ones that float32 cannot invert are what this is for
    report["round_trip"] = round_trip_report(model, np.concatenate(evaluated), device,
                                             labels=np.concatenate(evaluated_labels))
    report["round_trip_max_abs_error"] = report["round_trip"]["max_abs_error"]
    if n_per_emotion > 0:
        from bplf.metrics import load_classifier
        from bplf.metrics.fidelity import FLOOR, fidelity_table, untrained_like

        name = Path(path).name
        generators = {name: model, FLOOR: untrained_like(model, es)}
        judge = load_classifier(classifier, device)
        report["fidelity"] = fidelity_table(generators, judge, es, temperatures, n_per_emotion,
                                            guidance={name: guidance})
        if edit_faces > 0 and hasattr(model, "top_prior"):  # a BPLF (the peers cannot edit)
            from bplf.editing import latent_means
            from bplf.metrics.fidelity import edit_report

            faces = data.subsample(edit_faces, seed=0)
            means = latent_means(model, es, per_emotion=200)
            report["edits"] = edit_report(model, judge, faces.images, faces.labels, means,
                                          guidance=guidance)
        report["recommended"] = recommend(report)
    return report
