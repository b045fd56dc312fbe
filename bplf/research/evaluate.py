"""The one evaluator of a trained flow on the emotion set (``evaluate_checkpoint``): bits per
dimension and the flow's own classification accuracy per source, round trips of every test
face, and (with the classifier) fidelity of samples per setting and of edits per method,
guidance and intensity. ``tidy_rows`` flattens its report to one figure per row; ``python -m
bplf evaluate``, the ablations (``bplf.research.conditioning``,
``bplf.research.experiments.read_fidelity``) and the notebooks read it.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bplf.data import EMOTIONS, EmotionSet, load_emotion_set
from bplf.editing import latent_means
from bplf.guidance import Guidance
from bplf.likelihood import bpd_from_log_prob, dequantize, to_uint8
from bplf.model import BPLF, DensityModel
from bplf.research.metrics import load_classifier
from bplf.research.metrics.faces import face_found, same_person_reference
from bplf.research.metrics.fidelity import (
    CEILING,
    FLOOR,
    PERSON_COLUMNS,
    edit_sweep,
    fidelity_table,
    generative_accuracy,
    guidance_name,
    untrained_like,
)
from bplf.runs import load_checkpoint
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
    argmax_y log p(x | y) (``bplf.research.metrics.fidelity.generative_accuracy``).
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
    if model.map_depends_on_label and labels is None:
        raise ValueError("this model's map depends on the emotion: pass the faces' labels")
    errors, identical = [], []
    for i in progress(range(0, len(images), batch_size), desc="round trips"):
        x = dequantize(images[i : i + batch_size], centre=True).to(device)
        y = (torch.as_tensor(labels[i : i + batch_size], device=device)
             if model.map_depends_on_label else None)
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


@dataclass
class Sweep:
    """The settings an evaluation measures: samples at (temperature, guidance), and edits by
    (method, guidance, intensities); ``gradient_faces``: how many of the edited faces the
    costly ``gradient`` method gets (0: none); ``denoise``: every sample and edit setting as
    drawn (False) and/or after one Tweedie step (True, ``BPLF.denoise``; measured only for a
    model trained on noisy faces); None: as the model samples (``BPLF.denoises``) and edits
    (plain) by default."""

    samples: list[tuple[float, Guidance]]
    edits: list[tuple[str, Guidance, tuple[float, ...]]]
    gradient_faces: int = 0
    denoise: tuple[bool | None, ...] = (None,)


#: intensities of the edits that move latents by statistics: they change little below 2
LATENT_INTENSITIES = (0.5, 1.0, 1.5, 2.0, 3.0)
#: intensities of the edits that move the label
LABEL_INTENSITIES = (0.5, 1.0, 1.5)


def _edit_settings(methods: tuple[str, ...], swaps: list[Guidance],
                   reexpresses: list[Guidance]) -> list[tuple[str, Guidance, tuple[float, ...]]]:
    """Each method of ``methods`` as a sweep's edits: ``mean`` and ``prior`` plain at the latent
    intensities, ``swap`` and ``reexpress`` at each of their guidances and the label intensities."""
    edits = []
    for method in methods:
        if method in ("mean", "prior"):
            edits.append((method, Guidance(), LATENT_INTENSITIES))
        elif method in ("swap", "reexpress"):
            edits += [(method, g, LABEL_INTENSITIES)
                      for g in (swaps if method == "swap" else reexpresses)]
    return edits


def grid_sweep(temperatures: tuple[float, ...] = (0.5, 0.7, 1.0),
               guidance: tuple[float, ...] = (1.0,), methods: tuple[str, ...] = (),
               gradient_faces: int = 0) -> Sweep:
    """Every temperature with every guidance scale, by the coupling rule and by the prior rule
    (1: plain samples); edits by every method in ``methods``: ``swap`` at each scale of the
    coupling rule, ``reexpress`` of the prior rule."""
    scales = sorted(set(guidance) | {1.0})
    rules = [Guidance()] + [Guidance(coupling=g) for g in scales if g != 1.0] + [
        Guidance(prior=g) for g in scales if g != 1.0]
    rules = [g for g in rules if g.active or 1.0 in guidance]
    edits = _edit_settings(methods, [Guidance(coupling=g) for g in scales],
                           [Guidance(prior=g) for g in scales])
    return Sweep([(t, g) for g in rules for t in temperatures], edits,
                 gradient_faces if "gradient" in methods else 0)


def person_sweep(methods: tuple[str, ...]) -> Sweep:
    """The sweep that chose the shipped model's recommended settings (notebook 05): today's
    coupling rule up to 8, the prior rule from 2 to 8 with the couplings plain or at 2, the
    prior rule on the top level only and annealed over the levels, at three temperatures;
    every editing method, the label-moving ones guided by both rules."""
    g = Guidance
    at_07 = [g(), g(coupling=2), g(coupling=4), g(coupling=8), g(coupling=8, schedule="linear"),
             g(prior=2), g(prior=3), g(prior=4), g(prior=6), g(prior=8), g(prior=3, coupling=2),
             g(prior=4, coupling=2), g(prior=4, levels=(2,)), g(prior=4, schedule="linear")]
    warmer = [g(), g(prior=2), g(prior=3), g(prior=4), g(prior=3, coupling=2)]
    samples = ([(0.7, x) for x in at_07] + [(0.85, x) for x in warmer]
               + [(1.0, x) for x in [*warmer, g(prior=7, coupling=2)]])
    edits = _edit_settings(methods, [g(coupling=c) for c in (1, 2, 4, 8)],
                           [g(), g(prior=2), g(prior=3), g(prior=4), g(prior=3, coupling=2),
                            g(prior=7, coupling=2)])
    return Sweep(samples, edits, 14 if "gradient" in methods else 0)


def shortlist_sweep(methods: tuple[str, ...]) -> Sweep:
    """The person sweep narrowed to the settings in contention on the model it chose for
    (the prior rule, alone or with the couplings at 2, near each temperature's best joint
    rates; the plain samples as the reference; the coupling rule at 4, where faces began to
    break): for a model whose every sample costs a denoising step too. Edits: ``mean`` and
    ``prior``, ``reexpress`` by the prior rule, ``swap`` at coupling scale 4."""
    g = Guidance
    samples = ([(0.7, x) for x in (g(), g(coupling=4), g(prior=3), g(prior=3, coupling=2),
                                   g(prior=4, coupling=2))]
               + [(0.85, x) for x in (g(), g(prior=2), g(prior=3), g(prior=4),
                                      g(prior=3, coupling=2))]
               + [(1.0, x) for x in (g(), g(prior=3), g(prior=4), g(prior=7, coupling=2))])
    edits = _edit_settings(methods, [g(coupling=4)],
                           [g(prior=2), g(prior=3), g(prior=4), g(prior=3, coupling=2)])
    return Sweep(samples, edits, 14 if "gradient" in methods else 0)


#: the named sweeps of ``evaluate_checkpoint`` (besides "grid")
SWEEPS = {"person": person_sweep, "shortlist": shortlist_sweep}

#: a sample setting is recommended only if its face rate is at least this share of real faces'
FACE_RATE_SHARE = 0.9
#: ... and its samples of one emotion are no more alike than this (mean pair SSIM; two real
#: people of one emotion: about 0.07)
MAX_PAIR_SSIM = 0.3


def _denoised(row: dict) -> dict:
    """``{"denoised": True}`` for a denoised setting; nothing for others (older reports)."""
    return {"denoised": True} if row.get("denoised") else {}


def recommend(report: dict) -> dict:
    """The settings a person would accept, from an ``evaluate_checkpoint`` report.

    ``samples``: the highest joint rate (a face *and* the requested emotion) among the model's
    settings whose face rate is at least ``FACE_RATE_SHARE`` of the real faces' and whose pair
    SSIM is at most ``MAX_PAIR_SSIM``; ``edits``: the highest joint hit-rate among the edits that
    keep the person (``faces.keeps_person``) and keep the face rate at least ``FACE_RATE_SHARE``
    of their inputs'. ``meets_rule`` is False where no setting passes (then the best joint rate
    is given anyway, flagged)."""
    real = next(r for r in report["fidelity"] if r["generator"] == CEILING)
    rows = [r for r in report["fidelity"] if r["generator"] == report["checkpoint"]]
    ok = [r for r in rows if r["face_rate"] >= FACE_RATE_SHARE * real["face_rate"]
          and r["pair_ssim"] <= MAX_PAIR_SSIM]
    best = max(ok or rows, key=lambda r: r["joint_rate"])
    keys = ("temperature", "guidance", "guidance_config", "joint_rate", "face_rate", "accuracy",
            "fd", "pair_ssim", "precision", "recall")
    out = {"samples": {k: best[k] for k in keys} | _denoised(best) | {"meets_rule": bool(ok)},
           "rule": {"face_rate_share": FACE_RATE_SHARE, "max_pair_ssim": MAX_PAIR_SSIM}}
    edits = report.get("edits", [])
    if edits:
        floor = FACE_RATE_SHARE * report["reference"]["edit_inputs"]["face_rate"]
        kept = [e for e in edits if e["keeps_person"] and e["face_rate"] >= floor]
        e = max(kept or edits, key=lambda e: e["joint_rate"])
        out["edits"] = {k: e[k] for k in ("method", "guidance", "guidance_config", "intensity",
                                          "joint_rate", "hit_rate", "face_rate", "ssim",
                                          "rmse")} | _denoised(e) | {"meets_rule": bool(kept)}
    return out


def safe_ranges(report: dict) -> dict:
    """Where faces break, for the explorers' sliders: the largest scale of the prior rule alone
    and of the coupling rule alone (on every level, constant) whose samples (at any temperature
    measured) keep a face rate of at least ``FACE_RATE_SHARE`` of real faces'; and per editing
    method the largest
    intensity, and for the guided methods the largest scales, whose edits keep both the face
    rate (of the inputs') and the person."""
    real = next(r for r in report["fidelity"] if r["generator"] == CEILING)
    own = [r for r in report["fidelity"] if r["generator"] == report["checkpoint"]]
    # the sliders set a constant scale on every level: rows of other schedules do not count
    ok = [g for g, r in ((Guidance.of(r["guidance_config"]), r) for r in own)
          if r["face_rate"] >= FACE_RATE_SHARE * real["face_rate"]
          and g.levels is None and g.schedule == "constant"]
    out = {"samples": {"prior": max([g.prior for g in ok if g.coupling == 1] or [1.0]),
                       "coupling": max([g.coupling for g in ok if g.prior == 1] or [1.0])}}
    edits = report.get("edits", [])
    if edits:
        floor = FACE_RATE_SHARE * report["reference"]["edit_inputs"]["face_rate"]
        good = [e for e in edits if e["keeps_person"] and e["face_rate"] >= floor]
        out["edits"] = {
            "intensity": {m: max([e["intensity"] for e in good if e["method"] == m] or [0.0])
                          for m in dict.fromkeys(e["method"] for e in edits)},
            "prior": max([e["guidance_config"]["prior"] for e in good] or [1.0]),
            "coupling": max([e["guidance_config"]["coupling"] for e in good] or [1.0])}
    return out


def _edit_rows(path: Path | str, device, classifier, faces: dict, sweep: Sweep,
               reference: dict, threads: int | None = None, es: EmotionSet | None = None,
               mean_faces: int = 200) -> list[dict]:
    """The edit rows of ``evaluate_checkpoint`` (run in a worker process when asked), the
    ``mean`` method's latents from ``mean_faces`` train faces per emotion of ``es`` (default:
    ``load_emotion_set()``)."""

    if threads:
        torch.set_num_threads(threads)
    model = load_checkpoint(path, device)
    judge = load_classifier(classifier, device)
    means = latent_means(model, es or load_emotion_set(), per_emotion=mean_faces)
    rows = edit_sweep(model, judge, faces["images"], faces["labels"],
                      sweep.edits, reference, means, sweep.denoise)
    if sweep.gradient_faces:
        n = sweep.gradient_faces
        rows += edit_sweep(model, judge, faces["images"][:n], faces["labels"][:n],
                           [("gradient", Guidance(), (1.0,))], reference, means)
    return rows


def evaluate_checkpoint(path: Path | str, split: str = "test", limit: int | None = None,
                        device: torch.device | str | None = None,
                        classifier: Path | str | None = None, n_per_emotion: int = 0,
                        temperatures: tuple[float, ...] = (0.5, 0.7, 1.0),
                        edit_faces: int = 200, guidance: tuple[float, ...] = (1.0,),
                        sweep: str | Sweep = "grid", workers: int = 1,
                        emotion_set: EmotionSet | None = None, floor: bool = True,
                        mean_faces: int = 200) -> dict:
    """Per-source and overall bpd on ``split``, the flow's own classifier per source
    (``bpd_report``), and the round trip of every face evaluated (``round_trip_report``), for a
    run directory. With ``n_per_emotion`` > 0 also, judged by the classifier in ``classifier``
    (default: shipped): the fidelity table (``bplf.research.metrics.fidelity``: classifier
    accuracy, FD, face rate, joint rate, pair SSIM, precision and recall) of this model at every
    sample setting and (with ``floor``) of its untrained floor; the edit rows
    (``fidelity.edit_sweep``) on ``edit_faces`` faces; the references (real faces, the same person,
    the edits' inputs); and the ``recommend``-ed settings. ``sweep``: "grid" (``grid_sweep`` of
    ``temperatures`` and ``guidance``), a name of ``SWEEPS`` or a ``Sweep``. Guidance needs a
    run trained with label dropout (its null label is what guidance extrapolates from): asked for on
    the "grid" sweep it is refused, and the named sweeps or a ``Sweep`` drop their guided
    settings. ``emotion_set``: the faces (default: ``load_emotion_set()``); ``mean_faces``: train
    faces per emotion averaged for the ``mean`` edit. ``workers`` = 2 measures the edits in a second
    process, one thread each."""

    model = load_checkpoint(path, device)
    guidable = model.guidable
    guidance = tuple(guidance)
    if sweep == "grid" and any(g != 1.0 for g in guidance) and not guidable:
        raise ValueError(f"{path}: trained without label dropout, so it has no null label to "
                         f"guide from; evaluate it at guidance 1 only (got {guidance})")
    es = emotion_set or load_emotion_set()
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
    if n_per_emotion <= 0:
        return report
    methods = model.edit_methods if edit_faces > 0 else ()
    if sweep == "grid":
        plan = grid_sweep(temperatures, guidance, methods, gradient_faces=min(edit_faces, 14))
    elif isinstance(sweep, Sweep) or sweep in SWEEPS:
        plan = SWEEPS[sweep](methods) if isinstance(sweep, str) else Sweep(
            list(sweep.samples), list(sweep.edits), sweep.gradient_faces, sweep.denoise)
        if not guidable:
            plan.samples = [(t, g) for t, g in plan.samples if not g.active]
            plan.edits = [e for e in plan.edits if not e[1].active]
    else:
        raise ValueError(f"sweep must be 'grid', {', '.join(map(repr, SWEEPS))} or a Sweep, "
                         f"not {sweep!r}")
    plan.edits = [e for e in plan.edits if e[0] in methods]
    # denoising undoes the noise a model was trained on: a clean-face model has none
    plan.denoise = tuple(d for d in plan.denoise if not d or model.noise_std > 0) or (False,)
    if "gradient" not in methods:
        plan.gradient_faces = 0
    reference = same_person_reference(es)
    faces = data.subsample(edit_faces, seed=0)
    report["reference"] = {"same_person": reference,
                           "edit_inputs": {"n": len(faces),
                                           "face_rate": float(face_found(faces.images).mean())}}
    edit_job = (path, device, classifier, {"images": faces.images, "labels": faces.labels},
                plan, reference)
    edit_options = {"es": emotion_set, "mean_faces": mean_faces}
    pool = future = None
    if plan.edits and workers > 1:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_edit_rows, *edit_job, threads=1, **edit_options)
        torch.set_num_threads(1)
    try:
        name = Path(path).name
        judge = load_classifier(classifier, device)
        generators = {name: model}
        settings = {name: [(t, g, d) for t, g in plan.samples for d in plan.denoise]}
        if floor:
            generators[FLOOR] = untrained_like(model, es)
            settings[FLOOR] = [(t, 1.0) for t in sorted(
                {t for t, _ in plan.samples if t in (0.7, 1.0)} or {0.7})]
        report["fidelity"] = fidelity_table(generators, judge, es, n_per_emotion=n_per_emotion,
                                            settings=settings)
        if plan.edits:
            report["edits"] = (future.result() if future
                               else _edit_rows(*edit_job, **edit_options))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    report["recommended"] = recommend(report) | {"ranges": safe_ranges(report)}
    return report


#: the columns of ``tidy_rows``
TIDY_COLUMNS = ["metric", "source", "generator", "method", "temperature", "guidance",
                "intensity", "denoised", "value", "n"]


def tidy_rows(report: dict) -> list[dict]:
    """An ``evaluate_checkpoint`` report (or one written before some of its parts existed) as
    one figure per row (``TIDY_COLUMNS``):

    * per source and ``source="all"``: ``test_bpd`` (the emotion summed out), per source
      ``conditional_bpd`` and ``generative_accuracy`` (balanced); ``round_trip`` (max abs);
    * per sample setting (``generator``: "model", "floor" or "real" for the ceiling; temperature
      and ``guidance`` label, ``denoised`` or not): ``sample_accuracy``, ``sample_fd`` and
      ``sample_<column>`` for what a person sees (``PERSON_COLUMNS``);
    * per edit method, guidance, intensity (and ``denoised``): ``edit_hit_rate``,
      ``edit_face_rate``, ``edit_joint_rate``, ``edit_ssim``, ``edit_rmse`` (older reports:
      hit-rates per intensity and SSIM and RMSE at one);
    * the references: ``same_person_ssim`` and ``same_person_rmse`` (pairs of photos of one
      person, ``faces.same_person_reference``), ``edit_input_face_rate``."""
    rows: list[dict] = []

    def row(metric: str, value: float, n: int, **where) -> None:
        rows.append({"metric": metric, "source": "all", "generator": "", "method": "",
                     "temperature": math.nan, "guidance": "", "intensity": math.nan,
                     "denoised": False, "value": float(value), "n": int(n), **where})

    sources = report["sources"]
    for source, r in sources.items():
        row("test_bpd", r["marginal_bpd"], r["n"], source=source)
        row("conditional_bpd", r["conditional_bpd"], r["n"], source=source)
        if "generative_accuracy" in r:
            row("generative_accuracy", r["generative_accuracy"]["balanced_accuracy"], r["n"],
                source=source)
    total = sum(r["n"] for r in sources.values())
    row("test_bpd", report["overall_marginal_bpd"], total)
    row("round_trip", report["round_trip_max_abs_error"],
        report.get("round_trip", {}).get("n", total))
    who = {CEILING: "real", FLOOR: "floor"}
    for r in report.get("fidelity", []):
        where = {"generator": who.get(r["generator"], "model"),
                 "temperature": math.nan if r["temperature"] is None else r["temperature"],
                 "guidance": guidance_name(r.get("guidance", None if r["temperature"] is None
                                                 else 1.0)) or "",
                 "denoised": bool(r.get("denoised", False))}
        row("sample_accuracy", r["accuracy"], r["n"], **where)
        row("sample_fd", r["fd"], r["n"], **where)
        for column in PERSON_COLUMNS:
            if column in r:
                row(f"sample_{column}", r[column], r["n"], **where)
    for e in report.get("edits", []):
        if "identity" in e:  # the older format: hit-rates per intensity (each face toward all
            kept = e["identity"]  # 7 emotions) and the identity kept at one intensity
            where = {"generator": "model", "method": e["method"],
                     "guidance": guidance_name(e["guidance"])}
            for a, hits in e["hit_rate"].items():
                row("edit_hit_rate", hits, kept["n"] * len(EMOTIONS), **where,
                    intensity=float(a))
            for metric in ("ssim", "rmse"):
                row(f"edit_{metric}", kept[f"edit_{metric}"], kept["n"], **where,
                    intensity=kept["intensity"])
            continue
        where = {"generator": "model", "method": e["method"], "guidance": e["guidance"],
                 "intensity": e["intensity"], "denoised": bool(e.get("denoised", False))}
        for metric in ("hit_rate", "face_rate", "joint_rate", "ssim", "rmse"):
            row(f"edit_{metric}", e[metric], e["n"], **where)
    if "reference" in report:
        same, inputs = report["reference"]["same_person"], report["reference"]["edit_inputs"]
        row("same_person_ssim", same["ssim"], same["n"])
        row("same_person_rmse", same["rmse"], same["n"])
        row("edit_input_face_rate", inputs["face_rate"], inputs["n"])
    return rows
