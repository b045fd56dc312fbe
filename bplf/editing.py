"""Expression editing and interpolation in a flow's latent space.

The flow's map does not depend on the emotion: only the top prior does. So a face can be
encoded once and its latents moved from the source emotion's statistics toward the target's,
then decoded exactly. Two ways to define "toward":

* ``"mean"`` (default): add ``intensity * (m_target - m_source)`` to every latent, where ``m_k``
  is the mean latent of emotion k's training faces (all scales, so fine detail moves too);
* ``"prior"``: on the top latent only, move ``z`` toward
  ``mu_target + sigma_target / sigma_source * (z - mu_source)`` using the learned
  class-conditional prior (the other latents stay).

At intensity 0 both return the input latents, so the decoded face is the input face up to float
rounding (asserted in the tests and in notebook 05).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bplf.data import EMOTIONS, EmotionSet
from bplf.likelihood import dequantize
from bplf.model import BPLF

METHODS = ("mean", "prior")


def _labels(y, n: int, device: torch.device) -> Tensor:
    y = torch.as_tensor(y, dtype=torch.long, device=device)
    return y.expand(n) if y.ndim == 0 else y


@torch.no_grad()
def latent_means(model: BPLF, es: EmotionSet, split: str = "train", per_emotion: int = 2000,
                 seed: int = 0, batch_size: int = 256) -> list[Tensor]:
    """Mean latent of each emotion's faces: one tensor (K, C, H, W) per entry of ``encode``."""
    device = next(model.parameters()).device
    sums: list[Tensor] | None = None
    k = model.config.num_classes
    counts = torch.zeros(k, device=device)
    data = es.select(split=split)
    for e in range(k):
        sub = data.select(emotion=e).subsample(per_emotion, seed=seed)
        if len(sub) == 0:
            raise ValueError(f"no {split} faces of emotion {EMOTIONS[e]!r} to average")
        x = dequantize(sub.images, generator=torch.Generator().manual_seed(seed))
        for i in range(0, len(x), batch_size):
            zs = model.encode(x[i : i + batch_size].to(device))
            if sums is None:
                sums = [torch.zeros(k, *z.shape[1:], device=device) for z in zs]
            for s, z in zip(sums, zs, strict=True):
                s[e] += z.sum(0)
        counts[e] = len(x)
    return [s / counts.view(-1, 1, 1, 1) for s in sums]


@torch.no_grad()
def edit_latents(model: BPLF, zs: list[Tensor], source, target, intensity: float,
                 method: str = "mean", means: list[Tensor] | None = None) -> list[Tensor]:
    """Latents moved from emotion ``source`` toward ``target`` (ints or (N,) labels)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    n, device = len(zs[-1]), zs[-1].device
    src, tgt = _labels(source, n, device), _labels(target, n, device)
    if method == "mean":
        if means is None:
            raise ValueError("method='mean' needs the latent means (bplf.editing.latent_means)")
        return [z + intensity * (m[tgt] - m[src]) for z, m in zip(zs, means, strict=True)]
    mu_s, log_s = model.top_prior.params(src)
    mu_t, log_t = model.top_prior.params(tgt)
    top = zs[-1]
    moved = mu_t + torch.exp(log_t - log_s) * (top - mu_s)
    return [*zs[:-1], top + intensity * (moved - top)]


@torch.no_grad()
def edit_expression(model: BPLF, x: Tensor, source, target, intensity: float = 1.0,
                    method: str = "mean", means: list[Tensor] | None = None) -> Tensor:
    """Faces ``x`` (model space) of emotion ``source`` re-expressed as ``target``;
    ``intensity`` in [0, 1.5]: 0 returns ``x``, 1 a full move, above 1 exaggerates."""
    if not 0 <= intensity <= 1.5:
        raise ValueError(f"intensity must lie in [0, 1.5], got {intensity}")
    device = next(model.parameters()).device
    zs = model.encode(x.to(device))
    return model.decode(edit_latents(model, zs, source, target, intensity, method, means))


@torch.no_grad()
def interpolate(model: BPLF, x_a: Tensor, x_b: Tensor, steps: int = 8) -> Tensor:
    """``steps`` faces on the straight line between the latents of faces ``x_a`` and ``x_b``
    (each (1, C, H, W) or (C, H, W)), endpoints included -> (steps, C, H, W)."""
    device = next(model.parameters()).device
    za = model.encode(x_a.reshape(1, *x_a.shape[-3:]).to(device))
    zb = model.encode(x_b.reshape(1, *x_b.shape[-3:]).to(device))
    t = torch.linspace(0, 1, steps, device=device).view(-1, 1, 1, 1)
    return model.decode([a + t * (b - a) for a, b in zip(za, zb, strict=True)])

