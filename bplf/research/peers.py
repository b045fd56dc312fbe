"""Peer implementations behind bplf's model interface, so the same trainer, budget and metrics
measure them: normflows' Glow (an optional benchmark dependency, ``pip install normflows``).

Notebook 06 trains it beside the ``glow`` preset at a matched parameter count, to show that our
Glow is a fair, competitive baseline and not a strawman.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bplf.model import DensityModel, register_implementation


class NormflowsGlow(DensityModel):
    """normflows' multiscale Glow (its documented recipe: per level K ``GlowBlock``s, then a
    squeeze; class-conditional diagonal Gaussians on the split latents), with bplf's
    ``log_prob`` / ``sample`` / ``initialize`` / ``num_parameters``. Only ``levels``,
    ``steps_per_level``, ``hidden_channels``, ``channels``, ``image_size`` and ``num_classes``
    of the ``ModelConfig`` apply."""

    def __init__(self, config):
        super().__init__()
        try:
            import normflows as nf
        except ImportError:
            raise ImportError("the peer Glow needs normflows: pip install normflows "
                              "(or pip install -e '.[bench]')") from None
        if config.num_classes < 1:
            raise ValueError("NormflowsGlow is class-conditional: num_classes must be >= 1")
        self.config = config
        c, s, levels = config.channels, config.image_size, config.levels
        q0, merges, flows = [], [], []
        for i in range(levels):  # i = 0 is the deepest level, as in normflows' Glow example
            flows.append([nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), config.hidden_channels,
                                             split_mode="channel", scale=True)
                          for _ in range(config.steps_per_level)] + [nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
                shape = (c * 2 ** (levels - i), s // 2 ** (levels - i), s // 2 ** (levels - i))
            else:
                shape = (c * 2 ** (levels + 1), s // 2 ** levels, s // 2 ** levels)
            q0.append(nf.distributions.ClassCondDiagGaussian(shape, config.num_classes))
        self.flow = nf.MultiscaleFlow(q0, flows, merges)

    def _labels(self, y: Tensor | int, n: int, device: torch.device) -> Tensor:
        return torch.full((n,), y, device=device) if isinstance(y, int) else y.to(device)

    def log_prob(self, x: Tensor, y: Tensor | int) -> Tensor:
        return self.flow.log_prob(x, self._labels(y, len(x), x.device))

    def log_prob_classes(self, x: Tensor) -> Tensor:
        """(N, num_classes) log p(x | y) for every class."""
        return torch.stack([self.log_prob(x, k) for k in range(self.config.num_classes)], 1)

    def encode(self, x: Tensor, y: Tensor | int | None = None) -> list[Tensor]:
        """The latents, one per level (deepest first, as normflows orders them)."""
        return self.flow.inverse_and_log_det(x)[0]

    def decode(self, z: list[Tensor], y: Tensor | int | None = None) -> Tensor:
        return self.flow.forward_and_log_det(z)[0]

    @torch.no_grad()
    def initialize(self, x: Tensor, y: Tensor | None = None,
                   pca_x: Tensor | None = None) -> NormflowsGlow:
        """normflows' ActNorm initialises itself on its first batch: run one (the labels only
        change the prior, which ActNorm does not see)."""
        self.log_prob(x, 0 if y is None else y)
        return self

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Like ``BPLF.sample``. normflows draws from the global RNG: with a ``generator``, that
        RNG is seeded from it inside a fork, so the draw is reproducible and the caller's global
        RNG state is left as it was."""
        device = next(self.parameters()).device
        y = (torch.randint(self.config.num_classes, (n,), device=device) if y is None
             else self._labels(y, n, device))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if generator is not None:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            x, _ = self.flow.sample(n, y, temperature=temperature)
        return x


register_implementation("normflows", NormflowsGlow)
