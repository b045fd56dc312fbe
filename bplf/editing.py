"""Class-conditional sampling, expression editing and interpolation in a flow's latent space.

In a model whose couplings are not label-conditioned the map does not depend on the emotion:
only the priors do. So a face can be encoded once and its latents moved from the source
emotion's statistics toward the target's, then decoded exactly. Two ways to define "toward":

* ``"mean"`` (default): add ``intensity * (m_target - m_source)`` to every latent, where ``m_k``
  is the mean latent of emotion k's training faces (all scales, so fine detail moves too);
* ``"prior"``: on the top latent only, move ``z`` toward
  ``mu_target + sigma_target / sigma_source * (z - mu_source)`` using the learned
  class-conditional prior (the other latents stay).

A model with label-conditioned couplings (``ModelConfig.coupling_conditioning``) adds a third:

* ``"swap"``: encode the face with the source emotion, decode the same latents with the label
  embedding moved from source to target, ``e = e_source + intensity * (e_target - e_source)``;
  ``guidance`` (> 1: a stronger expression) is used for both the encode and the decode, so
  intensity 0 is exactly the identity at every guidance scale.

(``mean`` and ``prior`` still work there: the face is encoded and decoded with the source label.)
At intensity 0 every method returns the input latents, so the decoded face is the input face up
to float rounding (asserted in the tests and in notebook 05).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bplf.data import EMOTIONS, EmotionSet
from bplf.likelihood import dequantize, to_uint8
from bplf.model import BPLF

METHODS = ("mean", "prior", "swap")


def methods_for(model) -> tuple[str, ...]:
    """The editing methods ``model`` supports (``swap`` needs label-conditioned couplings)."""
    conditioned = getattr(model.config, "coupling_conditioning", False)
    return METHODS if conditioned else tuple(m for m in METHODS if m != "swap")


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


def _check_edit(model: BPLF, intensity: float, method: str, guidance: float) -> None:
    if not 0 <= intensity <= 1.5:
        raise ValueError(f"intensity must lie in [0, 1.5], got {intensity}")
    if method not in methods_for(model):
        raise ValueError(f"method must be one of {methods_for(model)} for this model, "
                         f"not {method!r}")
    if guidance != 1.0 and method != "swap":
        raise ValueError("guidance applies to method='swap' only")


@torch.no_grad()
def encode_for_edit(model: BPLF, x: Tensor, source, method: str = "mean",
                    guidance: float = 1.0) -> list[Tensor]:
    """The latents an edit of faces ``x`` (model space) of emotion ``source`` starts from: the
    same for every target and intensity, so a sweep encodes once (``decode_edit``)."""
    _check_edit(model, 0.0, method, guidance)
    device = next(model.parameters()).device
    src = torch.as_tensor(source, dtype=torch.long, device=device)
    # encoded with the source emotion (it matters to label-conditioned couplings)
    return model.encode(x.to(device), src.expand(len(x)) if src.ndim else src,
                        **({"guidance": guidance} if method == "swap" else {}))


@torch.no_grad()
def decode_edit(model: BPLF, zs: list[Tensor], source, target, intensity: float = 1.0,
                method: str = "mean", means: list[Tensor] | None = None,
                guidance: float = 1.0) -> Tensor:
    """The edited faces from ``encode_for_edit``'s latents: ``mean`` and ``prior`` move the
    latents and decode with the source emotion; ``swap`` keeps them and decodes with the label
    embedding moved from source to target (guided by ``guidance``)."""
    _check_edit(model, intensity, method, guidance)
    device = zs[-1].device
    src = torch.as_tensor(source, dtype=torch.long, device=device)
    n = len(zs[-1])
    if method == "swap":
        tgt = torch.as_tensor(target, dtype=torch.long, device=device)
        e_src, e_tgt = model.embed(src), model.embed(tgt)
        return model.decode(zs, tgt.expand(n), guidance=guidance,
                            embedding=e_src + intensity * (e_tgt - e_src))
    return model.decode(edit_latents(model, zs, src, target, intensity, method, means), src)


def edit_expression(model: BPLF, x: Tensor, source, target, intensity: float = 1.0,
                    method: str = "mean", means: list[Tensor] | None = None,
                    guidance: float = 1.0) -> Tensor:
    """Faces ``x`` (model space) of emotion ``source`` re-expressed as ``target``;
    ``intensity`` in [0, 1.5]: 0 returns ``x``, 1 a full move, above 1 exaggerates.
    ``method``: one of ``methods_for(model)``; ``guidance`` applies to ``swap`` only."""
    _check_edit(model, intensity, method, guidance)
    zs = encode_for_edit(model, x, source, method, guidance)
    return decode_edit(model, zs, source, target, intensity, method, means, guidance)


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
                 batch_size: int = 500, guidance: float = 1.0) -> tuple[torch.Tensor, np.ndarray]:
    """``n_per_emotion`` samples of every emotion as uint8 (N, 48, 48), with their labels; fixed
    seeds (one generator per temperature, drawn in fixed-size batches); ``guidance`` as in
    ``BPLF.sample``."""
    device = next(model.parameters()).device
    y = np.repeat(np.arange(model.config.num_classes), n_per_emotion)
    gen = torch.Generator(device=device).manual_seed(seed)
    guided = {"guidance": guidance} if guidance != 1.0 else {}  # the peers have no guidance
    out = []
    for i in range(0, len(y), batch_size):
        yb = torch.as_tensor(y[i : i + batch_size], device=device)
        out.append(to_uint8(model.sample(len(yb), yb, temperature, generator=gen,
                                         **guided)).cpu())
    return torch.cat(out)[:, 0], y
