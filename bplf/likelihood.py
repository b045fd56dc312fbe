"""The one definition of the data transform and of bits per dimension used in this repo.

Images are 8-bit: u in {0, ..., 255}. Uniform dequantisation ``x = (u + U[0, 1)) / 256 - 0.5``
turns them into continuous data in [-0.5, 0.5) whose density p(x) lower-bounds the probability of
the discrete image: log P(u) >= log p(x) - D log 256 (the 1/256 scaling contributes -D log 256,
D = C*H*W). Bits per dimension is that negative log-likelihood in bits, per dimension:
``bpd = (-log p(x) + D ln 256) / (D ln 2)``, with 8 bits per pixel (a uniform model scores 8.0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

#: bits per pixel of the data (uint8 images)
NUM_BITS = 8
NUM_BINS = 2**NUM_BITS


def dequantize(u, generator: torch.Generator | None = None, centre: bool = False) -> Tensor:
    """uint8 images (N, H, W) or (N, C, H, W), numpy or tensor -> float32 (N, C, H, W),
    ``x = (u + U[0, 1)) / 256 - 0.5``, noise drawn from ``generator`` (CPU by default).

    ``centre=True`` puts each pixel at the centre of its grey level instead (noise 1/2): the
    deterministic model-space image a classifier or an editor reads."""
    u = torch.as_tensor(np.asarray(u) if not isinstance(u, Tensor) else u)
    if u.dtype != torch.uint8:
        raise TypeError(f"dequantize expects uint8 images, got {u.dtype}")
    if u.ndim == 3:
        u = u[:, None]
    if u.ndim != 4:
        raise ValueError(f"expected (N, H, W) or (N, C, H, W) images, got shape {tuple(u.shape)}")
    if centre:
        return (u.float() + 0.5) / NUM_BINS - 0.5
    device = generator.device if generator is not None else u.device
    noise = torch.rand(u.shape, generator=generator, device=device).to(u.device)
    return (u.float() + noise) / NUM_BINS - 0.5


def to_uint8(x: Tensor) -> Tensor:
    """Quantise model-space images back to uint8 for display: floor((x + 0.5) * 256), clipped."""
    return ((x.detach() + 0.5) * NUM_BINS).floor().clamp(0, NUM_BINS - 1).to(torch.uint8)


def bpd_from_log_prob(log_prob: Tensor | float, num_dims: int) -> Tensor | float:
    """Bits per dimension of 8-bit data from log p(x) in nats of the dequantised images:
    ``(-log_prob + D ln 256) / (D ln 2)``."""
    return (-log_prob + num_dims * math.log(NUM_BINS)) / (num_dims * math.log(2))


@torch.no_grad()
def bits_per_dim(model, images_uint8, y=None, batch_size: int = 256, seed: int = 0,
                 device: torch.device | str | None = None) -> float:
    """Mean bits per dimension (8-bit data) of uint8 images under ``model``.

    One fixed-seed uniform dequantisation (the same numbers every call), no gradients, eval mode
    (the model's train/eval mode is restored afterwards). ``y``: labels or None.
    """
    param = next(model.parameters())
    device = torch.device(device) if device else param.device
    x = dequantize(images_uint8, generator=torch.Generator().manual_seed(seed)).to(param.dtype)
    labels = None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)
    dims = x[0].numel()
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        for i in range(0, len(x), batch_size):
            yb = None if labels is None else labels[i : i + batch_size].to(device)
            lp = model.log_prob(x[i : i + batch_size].to(device), yb)
            total += float(bpd_from_log_prob(lp.double(), dims).sum())
    finally:
        model.train(was_training)
    return total / len(x)
