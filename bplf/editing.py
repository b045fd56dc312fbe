"""Class-conditional sampling, expression editing and interpolation in a flow's latent space.

A face is encoded, changed and decoded exactly. The methods (``model.edit_methods`` says which
a model supports), each moving emotion ``source`` toward ``target`` by ``intensity`` (0 gives
the input back exactly; 1 is a full move; above 1 exaggerates, up to ``MAX_INTENSITY``):

* ``"mean"``: add ``intensity * (m_target - m_source)`` to every latent, where ``m_k`` is the
  mean latent of emotion k's training faces (all scales, so fine detail moves too);
* ``"prior"``: on the top latent only, move ``z`` toward
  ``mu_target + sigma_target / sigma_source * (z - mu_source)`` under the learned
  class-conditional prior (the other latents stay);
* ``"reexpress"``: every latent re-expressed under the target's (guided) prior: standardised
  under the source's conditional prior, placed under the target's, and decoded with the target
  label in the couplings (``BPLF.encode_noise`` / ``decode_noise``); ``guidance`` (a
  ``bplf.guidance.Guidance``) guides the target's priors and couplings;
* ``"swap"`` (label-conditioned couplings): keep the latents, decode with the label embedding
  moved from source to target; ``guidance`` (the coupling rule) is used for both the encode and
  the decode, so intensity 0 is exactly the identity at every scale;
* ``"gradient"``: the model's own classifier, ``log p(target | x) = log p(x | target) -
  logsumexp_y log p(x | y)``: the face's latents move up its gradient (Adam, with a proximity
  term) until the model prefers the target (``GRADIENT_STEPS`` at most); no external classifier
  takes part, the emotion classifier only judges.

(``mean``, ``prior`` and ``gradient`` encode and decode with the source label.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from bplf.data import EMOTIONS, EmotionSet
from bplf.guidance import Guidance
from bplf.likelihood import dequantize, to_uint8
from bplf.model import BPLF

#: the largest intensity an edit accepts (``mean`` and ``prior`` change little below 2)
MAX_INTENSITY = 3.0
#: the ``gradient`` method: at most this many Adam steps of this size on the latents, with this
#: weight on the squared distance to the encoded latents (per latent entry)
GRADIENT_STEPS, GRADIENT_LR, GRADIENT_PROXIMITY = 8, 0.03, 1e-3


@torch.no_grad()
def latent_means(model: BPLF, es: EmotionSet, split: str = "train", per_emotion: int = 2000,
                 seed: int = 0, batch_size: int = 256) -> list[Tensor]:
    """Mean latent of each emotion's faces: one tensor (K, C, H, W) per entry of ``encode``."""
    device = next(model.parameters()).device
    data = es.select(split=split)
    per_class = []
    for e in range(model.config.num_classes):
        sub = data.select(emotion=e).subsample(per_emotion, seed=seed)
        if len(sub) == 0:
            raise ValueError(f"no {split} faces of emotion {EMOTIONS[e]!r} to average")
        x = dequantize(sub.images, generator=torch.Generator().manual_seed(seed))
        # (the label matters only where the couplings are label-conditioned)
        batches = [model.encode(x[i : i + batch_size].to(device), e)
                   for i in range(0, len(x), batch_size)]
        per_class.append([torch.cat(level).mean(0) for level in zip(*batches, strict=True)])
    return [torch.stack(level) for level in zip(*per_class, strict=True)]


@torch.no_grad()
def edit_latents(model: BPLF, zs: list[Tensor], source, target, intensity: float,
                 method: str = "mean", means: list[Tensor] | None = None) -> list[Tensor]:
    """Latents moved from emotion ``source`` toward ``target`` (ints or (N,) labels); the
    ``mean`` and ``prior`` methods (``swap`` moves the label, not the latents)."""
    if method not in ("mean", "prior"):
        raise ValueError(f"edit_latents moves latents by 'mean' or 'prior', not {method!r} "
                         "(swap edits in edit_expression)")
    # an int label indexes (C, H, W) statistics that broadcast over the batch, (N,) labels
    # index one row per face
    src = torch.as_tensor(source, dtype=torch.long, device=zs[-1].device)
    tgt = torch.as_tensor(target, dtype=torch.long, device=zs[-1].device)
    if method == "mean":
        if means is None:
            raise ValueError("method='mean' needs the latent means (bplf.editing.latent_means)")
        return [z + intensity * (m[tgt] - m[src]) for z, m in zip(zs, means, strict=True)]
    mu_s, log_s = model.top_prior.params(src)
    mu_t, log_t = model.top_prior.params(tgt)
    top = zs[-1]
    moved = mu_t + torch.exp(log_t - log_s) * (top - mu_s)
    return [*zs[:-1], top + intensity * (moved - top)]


def _check_edit(model: BPLF, intensity: float, method: str, guidance: Guidance) -> None:
    if not 0 <= intensity <= MAX_INTENSITY:
        raise ValueError(f"intensity must lie in [0, {MAX_INTENSITY:g}], got {intensity}")
    if method not in model.edit_methods:
        raise ValueError(f"method must be one of {model.edit_methods} for this model, "
                         f"not {method!r}")
    if guidance.active and method not in ("swap", "reexpress"):
        raise ValueError("guidance applies to method='swap' and 'reexpress' only")
    if guidance.prior != 1.0 and method == "swap":
        raise ValueError("swap keeps the latents: only the coupling rule guides it "
                         "(Guidance(coupling=...))")


@dataclass
class EditStart:
    """What ``encode_for_edit`` found for faces of emotion ``source``: their latents (or, for
    ``reexpress``, their standardised noise), the same for every target and intensity; the
    ``gradient`` method keeps each target's optimised latents in ``ascended``."""

    latents: list[Tensor]
    source: Tensor
    method: str
    guidance: Guidance
    ascended: dict[tuple[int, ...], list[Tensor]] = field(default_factory=dict)


@torch.no_grad()
def encode_for_edit(model: BPLF, x: Tensor, source, method: str = "mean",
                    guidance: Guidance | float = 1.0) -> EditStart:
    """The start of an edit of faces ``x`` (model space) of emotion ``source``: the same for
    every target and intensity, so a sweep encodes once (``decode_edit``)."""
    guidance = Guidance.of(guidance)
    _check_edit(model, 0.0, method, guidance)
    device = next(model.parameters()).device
    src = torch.as_tensor(source, dtype=torch.long, device=device)
    src = src.expand(len(x)) if src.ndim == 0 else src
    x = x.to(device)
    # encoded with the source emotion (it matters to label-conditioned couplings)
    if method == "reexpress":
        latents = model.encode_noise(x, src)
    else:
        latents = model.encode(x, src, guidance if method == "swap" else 1.0)
    return EditStart(latents, src, method, guidance)


def ascend_own_classifier(model: BPLF, zs: list[Tensor], source: Tensor, target: Tensor,
                          steps: int = GRADIENT_STEPS, lr: float = GRADIENT_LR,
                          proximity: float = GRADIENT_PROXIMITY) -> list[Tensor]:
    """Latents moved up the gradient of the model's own ``log p(target | x)`` (Bayes' rule over
    its class-conditional likelihoods, ``x`` decoded with the source label), minus ``proximity``
    times the mean squared distance to ``zs``; a face stops moving once the model prefers the
    target."""
    start = [z.detach() for z in zs]
    z = [s.clone().requires_grad_(True) for s in start]
    opt = torch.optim.Adam(z, lr=lr)
    n = len(start[-1])
    dims = sum(s[0].numel() for s in start)
    with torch.enable_grad():
        for _ in range(steps):
            lp = model.log_prob_classes(model.decode(z, source))  # (N, K) nats
            done = lp.argmax(1) == target
            if bool(done.all()):
                break
            log_post = lp[torch.arange(n), target] - torch.logsumexp(lp, 1)
            dist = sum(((a - b) ** 2).flatten(1).sum(1) for a, b in zip(z, start, strict=True))
            loss = -(log_post - proximity * dist / dims).sum()
            before = [t.detach().clone() for t in z]
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for t, b in zip(z, before, strict=True):
                    t[done] = b[done]
    return [t.detach() for t in z]


def decode_edit(model: BPLF, start: EditStart, target, intensity: float = 1.0,
                means: list[Tensor] | None = None, denoise: bool = False) -> Tensor:
    """The edited faces from ``encode_for_edit``'s start, by its method (module docstring);
    ``denoise``: one Tweedie step given the target after decoding (``BPLF.denoise``; a model
    trained on noisy faces)."""
    out = _decode_edit(model, start, target, intensity, means)
    if not denoise:
        return out
    tgt = torch.as_tensor(target, dtype=torch.long, device=out.device)
    return model.denoise(out, tgt.expand(len(out)) if tgt.ndim == 0 else tgt)


@torch.no_grad()
def _decode_edit(model: BPLF, start: EditStart, target, intensity: float,
                 means: list[Tensor] | None) -> Tensor:
    method, guidance, src = start.method, start.guidance, start.source
    _check_edit(model, intensity, method, guidance)
    zs = start.latents
    n = len(zs[-1])
    tgt = torch.as_tensor(target, dtype=torch.long, device=zs[-1].device)
    tgt = tgt.expand(n) if tgt.ndim == 0 else tgt
    if method == "swap":
        e_src, e_tgt = model.embed(src), model.embed(tgt)
        return model.decode(zs, tgt, guidance=guidance,
                            embedding=e_src + intensity * (e_tgt - e_src))
    if method == "reexpress":
        return model.decode_noise(zs, tgt, guidance, source=src, intensity=intensity)
    if method == "gradient":
        if intensity == 0:
            return model.decode(zs, src)
        key = tuple(tgt.tolist())
        if key not in start.ascended:
            start.ascended[key] = ascend_own_classifier(model, zs, src, tgt)
        moved = [z + intensity * (a - z) for z, a in zip(zs, start.ascended[key], strict=True)]
        return model.decode(moved, src)
    return model.decode(edit_latents(model, zs, src, tgt, intensity, method, means), src)


def edit_expression(model: BPLF, x: Tensor, source, target, intensity: float = 1.0,
                    method: str = "mean", means: list[Tensor] | None = None,
                    guidance: Guidance | float = 1.0, denoise: bool = False) -> Tensor:
    """Faces ``x`` (model space) of emotion ``source`` re-expressed as ``target``;
    ``intensity`` in [0, ``MAX_INTENSITY``]: 0 returns ``x``, 1 a full move, above 1
    exaggerates. ``method``: one of ``model.edit_methods``; ``guidance`` (a
    ``bplf.guidance.Guidance``, or a number: the coupling rule) for ``swap`` and
    ``reexpress``; ``denoise`` as in ``decode_edit``."""
    start = encode_for_edit(model, x, source, method, guidance)
    return decode_edit(model, start, target, intensity, means, denoise)


@torch.no_grad()
def interpolate(model: BPLF, x_a: Tensor, x_b: Tensor, steps: int = 8, y=None) -> Tensor:
    """``steps`` faces on the straight line between the latents of faces ``x_a`` and ``x_b``
    (each (1, C, H, W) or (C, H, W)), endpoints included -> (steps, C, H, W). ``y``: the
    emotion both are encoded and decoded with (models with label-conditioned couplings)."""
    device = next(model.parameters()).device
    za = model.encode(x_a.reshape(1, *x_a.shape[-3:]).to(device), y)
    zb = model.encode(x_b.reshape(1, *x_b.shape[-3:]).to(device), y)
    t = torch.linspace(0, 1, steps, device=device).view(-1, 1, 1, 1)
    return model.decode([a + t * (b - a) for a, b in zip(za, zb, strict=True)], y)


@torch.no_grad()
def sample_faces(model: BPLF, n_per_emotion: int, temperature: float, seed: int = 0,
                 batch_size: int = 500, guidance: Guidance | float = 1.0,
                 denoise: bool | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """``n_per_emotion`` samples of every emotion as uint8 (N, 48, 48), with their labels; fixed
    seeds (one generator per temperature, drawn in fixed-size batches); ``guidance`` and
    ``denoise`` as in ``BPLF.sample``."""
    device = next(model.parameters()).device
    y = np.repeat(np.arange(model.config.num_classes), n_per_emotion)
    gen = torch.Generator(device=device).manual_seed(seed)
    guidance = Guidance.of(guidance)
    # the peers have neither guidance nor denoising
    guided = ({"guidance": guidance} if guidance.active else {}) | (
        {"denoise": denoise} if denoise is not None and isinstance(model, BPLF) else {})
    out = []
    for i in range(0, len(y), batch_size):
        yb = torch.as_tensor(y[i : i + batch_size], device=device)
        out.append(to_uint8(model.sample(len(yb), yb, temperature, generator=gen,
                                         **guided)).cpu())
    return torch.cat(out)[:, 0], y
