"""Guidance: how a sample or an edit is pushed toward its emotion, beyond the model's density.

One object says what is guided and how (``Guidance``); the model applies it where it decodes.
Two rules, both extrapolating from the null label ("no emotion", learned by label dropout):

* **couplings** (``coupling``): each label-conditioned coupling computes its scale and shift
  for the label and for the null label and extrapolates, ``h = h_null + g (h_label - h_null)``
  (``flows.CouplingCondition``). At large ``g`` the scales saturate and faces turn into white
  and black blotches (notebook 05 measures where).
* **priors** (``prior``): the Gaussian rule of STARFlow (Gu et al. 2025, arXiv:2506.06276),
  applied where a step *is* Gaussian, the top and split priors: with ``w = g - 1`` the guided
  density is ``p_c^(1+w) / p_u^w`` renormalised, again a Gaussian (``gaussian_guidance``).

A scale of 1 is the plain conditional, for either rule. ``levels`` restricts both rules to some
levels (0 is the finest, the top prior belongs to the last level); ``schedule="linear"`` anneals
them over the levels in the order a sample is decoded, from no guidance at the coarsest level
to the full scale at the finest (TarFlow's linear schedule, Zhai et al. 2024, per level).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class Guidance:
    """What is guided and how: the scale of the prior rule and of the coupling rule (1: off),
    the levels they act on (None: all) and the schedule over levels."""

    prior: float = 1.0
    coupling: float = 1.0
    levels: tuple[int, ...] | None = None
    schedule: str = "constant"

    def __post_init__(self) -> None:
        if self.prior < 1 or self.coupling < 1:
            raise ValueError(f"guidance scales must be >= 1 (1 is no guidance), got prior "
                             f"{self.prior} and coupling {self.coupling}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(int(v) for v in self.levels))

    @classmethod
    def of(cls, value: Guidance | float | dict | None) -> Guidance:
        """A ``Guidance`` from itself, a dict (``to_dict``), None (none) or a number: a plain
        number is the coupling rule's scale, what ``guidance=`` meant before the prior rule."""
        if isinstance(value, Guidance):
            return value
        if value is None:
            return cls()
        if isinstance(value, dict):
            return cls(**value)
        return cls(coupling=float(value))

    @property
    def active(self) -> bool:
        """Whether anything is guided (else: the model's own conditional density)."""
        return self.prior != 1.0 or self.coupling != 1.0

    def scales(self, level: int, num_levels: int) -> tuple[float, float]:
        """``(prior scale, coupling scale)`` at ``level`` of a model with ``num_levels``."""
        if self.levels is not None and level not in self.levels:
            return 1.0, 1.0
        ramp = 1.0
        if self.schedule == "linear" and num_levels > 1:
            ramp = (num_levels - 1 - level) / (num_levels - 1)  # decoded coarse to fine
        return 1 + ramp * (self.prior - 1), 1 + ramp * (self.coupling - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["levels"] = list(self.levels) if self.levels is not None else None
        return d

    def label(self) -> str:
        """A short name for tables and figure titles, e.g. ``prior 3 · couplings 2``."""
        if not self.active:
            return "unguided"
        parts = [f"{name} {scale:g}" for name, scale in (("prior", self.prior),
                                                         ("couplings", self.coupling))
                 if scale != 1.0]
        if self.levels is not None:
            parts.append("levels " + ",".join(map(str, self.levels)))
        if self.schedule != "constant":
            parts.append(self.schedule)
        return " · ".join(parts)


NONE = Guidance()


def gaussian_guidance(mean_c: Tensor, log_std_c: Tensor, mean_u: Tensor, log_std_u: Tensor,
                      scale: float) -> tuple[Tensor, Tensor]:
    """STARFlow's guided Gaussian: ``(mean, log_std)`` of ``N(mean_c, s_c^2)^(1+w) /
    N(mean_u, s_u^2)^w`` renormalised, ``w = scale - 1``.

    With ``r = clip(s_c^2 / s_u^2, 0, 1)``: mean ``mean_c + w r / (1 + w - w r) (mean_c -
    mean_u)``, std ``s_c / sqrt(1 + w - w r)``. Clipping ``r`` at 1 keeps the precision
    ``(1 + w - w r) / s_c^2`` positive where the conditional is wider than the null.
    """
    if scale == 1.0:
        return mean_c, log_std_c
    w = scale - 1.0
    r = torch.exp(2 * (log_std_c - log_std_u)).clamp(0, 1)
    denom = 1 + w - w * r
    return mean_c + (w * r / denom) * (mean_c - mean_u), log_std_c - 0.5 * torch.log(denom)
