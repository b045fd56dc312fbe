"""The bi-parallel affine coupling: a convolutional and a linear conditioner, side by side."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bplf.flows.base import FlowModule

BRANCHES = ("both", "conv", "linear")
#: the default floor of the coupling scale: with it every held-out face of the shipped model
#: round-trips to the same uint8 image in float32 (checkpoints/bplf-emotion48/README.md)
MIN_SCALE = 0.1


@dataclass
class CouplingCondition:
    """What a label-conditioned coupling is given as ``cond``: the label embedding (N or 1, E)
    and, for guidance, the null label's embedding and the guidance scale ``w``.

    With ``w != 1`` each coupling computes its conditioner twice and uses
    ``(h_s, t) = (h_s, t)_null + w * ((h_s, t)_label - (h_s, t)_null)`` before the scale floor:
    still an exact bijection given the condition, but no longer the model's density (a guided
    sample is not a draw from p(x | y)); ``w = 1`` is the plain conditional.
    """

    embedding: Tensor
    null: Tensor | None = None
    guidance: float = 1.0


def _zero_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=bias)
    nn.init.zeros_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def conv_stack(in_channels: int, hidden_channels: int, out_channels: int, depth: int = 3,
               kernel_size: int = 3, hidden_kernel_size: int | None = None) -> nn.Sequential:
    """``depth`` convolutions with ReLU between; first and last ``kernel_size``, inner ones
    ``hidden_kernel_size`` (default ``kernel_size``); the last one is zero-initialised."""
    if depth < 1:
        raise ValueError(f"coupling depth must be >= 1, got {depth}")
    inner = hidden_kernel_size or kernel_size
    layers: list[nn.Module] = []
    channels = in_channels
    for i in range(depth - 1):
        k = kernel_size if i == 0 else inner
        layers += [nn.Conv2d(channels, hidden_channels, k, padding="same"), nn.ReLU()]
        channels = hidden_channels
    layers.append(_zero_conv(channels, out_channels, kernel_size))
    return nn.Sequential(*layers)


class BiParallelAffineCoupling(FlowModule):
    """Affine coupling whose conditioner has two parallel branches, summed.

    Channels split into ``(x_a, x_b)``; ``h = conv_branch(x_b) + linear_branch(x_b)`` gives a
    log-scale pre-activation ``h_s`` and a shift ``t`` for ``x_a``:
    ``y_a = x_a * s + t`` with ``s = max(sigmoid(h_s + 2), m)`` in ``[m, 1)``, ``y_b = x_b``;
    log|det| = sum(log s). Both branches end zero-initialised, so a fresh coupling is a fixed
    scaling of ``x_a``. ``branches`` selects "both", "conv" or "linear" (the ablations); the
    unused branch attribute is ``None``.

    The bound above (1) keeps training from blowing up; the floor ``m = min_scale`` keeps the
    layer invertible in float32. With ``s`` near 0, ``x_a * s`` drowns in the rounding of ``t``:
    float32 keeps ``y_a`` to about ``6e-8 * |t|``, so the inverse recovers ``x_a`` only to
    ``6e-8 * |t| / s`` (notebook 03 measures this on a real face). ``m = 0`` is plain
    ``sigmoid(h_s + 2)``, the form models trained before the floor existed use.

    With ``cond_channels`` > 0 the coupling is label-conditioned (the conditional INN of
    Ardizzone et al. 2019): ``cond`` is a label embedding (N, E) or a ``CouplingCondition``; it
    is tiled to H x W and concatenated to ``x_b`` at the input of both branches, so the step is
    exactly invertible given the label. An unconditioned coupling ignores ``cond``.
    """

    def __init__(self, in_channels: int, hidden_channels: int, depth: int = 3,
                 kernel_size: int = 3, hidden_kernel_size: int | None = None,
                 branches: str = "both", min_scale: float = MIN_SCALE, cond_channels: int = 0):
        super().__init__()
        if cond_channels < 0:
            raise ValueError(f"cond_channels must be >= 0, got {cond_channels}")
        if not 0 <= min_scale < 1:
            raise ValueError(f"min_scale must lie in [0, 1), got {min_scale}")
        if in_channels < 2:
            raise ValueError(f"a coupling needs at least 2 channels, got {in_channels}")
        if branches not in BRANCHES:
            raise ValueError(f"branches must be one of {BRANCHES}, not {branches!r}")
        self.branches = branches
        self.min_scale = min_scale
        self.cond_channels = cond_channels
        self.channels_a = in_channels // 2
        self.channels_b = in_channels - self.channels_a
        out = 2 * self.channels_a
        cin = self.channels_b + cond_channels
        self.conv_branch = (conv_stack(cin, hidden_channels, out, depth, kernel_size,
                                       hidden_kernel_size) if branches != "linear" else None)
        # A 1x1 convolution is a linear map of x_b at every pixel; it needs its own bias only
        # when there is no conv branch to provide one.
        self.linear_branch = (_zero_conv(cin, out, 1, bias=branches == "linear")
                              if branches != "conv" else None)

    def _branches(self, inp: Tensor) -> tuple[Tensor, Tensor]:
        if inp.device.type == "cpu":
            # oneDNN's CPU convolutions are faster channels-last: a training step of the bplf
            # preset ran 1.2x faster (`python -m bplf bench`, README "Training speed")
            inp = inp.contiguous(memory_format=torch.channels_last)
        h = 0
        if self.conv_branch is not None:
            h = h + self.conv_branch(inp)
        if self.linear_branch is not None:
            h = h + self.linear_branch(inp)
        # at least float32 (bf16 under autocast is upcast): the log-det sums must stay accurate
        h_s, t = h.to(torch.promote_types(h.dtype, torch.float32)).chunk(2, dim=1)
        return h_s, t

    def _with_label(self, x_b: Tensor, embedding: Tensor) -> Tensor:
        n, _, height, width = x_b.shape
        e = embedding.to(x_b.dtype)[:, :, None, None].expand(n, -1, height, width)
        return torch.cat([x_b, e], dim=1)

    def conditioner(self, x_b: Tensor,
                    cond: Tensor | CouplingCondition | None = None) -> tuple[Tensor, Tensor]:
        """``(h_s, t)`` for the transformed half, from the sum of the active branches (guided
        when ``cond`` asks for it, see ``CouplingCondition``)."""
        if not self.cond_channels:
            return self._branches(x_b)
        if cond is None:
            raise ValueError("this coupling is label-conditioned (cond_channels="
                             f"{self.cond_channels}): pass the label embedding as cond")
        if not isinstance(cond, CouplingCondition):
            cond = CouplingCondition(cond)
        if cond.embedding.shape[-1] != self.cond_channels:
            raise ValueError(f"expected a label embedding of {self.cond_channels} channels, "
                             f"got shape {tuple(cond.embedding.shape)}")
        h_s, t = self._branches(self._with_label(x_b, cond.embedding))
        if cond.guidance != 1.0:
            if cond.null is None:
                raise ValueError("guidance != 1 needs the null label's embedding")
            h0, t0 = self._branches(self._with_label(x_b, cond.null))
            h_s = h0 + cond.guidance * (h_s - h0)
            t = t0 + cond.guidance * (t - t0)
        return h_s, t

    def log_scale(self, h_s: Tensor) -> Tensor:
        """``log s = max(log sigmoid(h_s + 2), log m)``: above the floor ``m`` the scale is the
        plain sigmoid, so a model trained without a floor changes only where it fell below."""
        log_s = F.logsigmoid(h_s + 2.0)
        return log_s.clamp_min(math.log(self.min_scale)) if self.min_scale > 0 else log_s

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.channels_a], x[:, self.channels_a :]
        h_s, t = self.conditioner(x_b, cond)
        log_s = self.log_scale(h_s)
        y_a = x_a * log_s.exp() + t
        return torch.cat([y_a, x_b], dim=1), log_s.flatten(1).sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        y_a, x_b = y[:, : self.channels_a], y[:, self.channels_a :]
        h_s, t = self.conditioner(x_b, cond)
        x_a = (y_a - t) * (-self.log_scale(h_s)).exp()
        return torch.cat([x_a, x_b], dim=1)

