"""Looking inside a model: what each branch of each bi-parallel coupling contributes."""

from __future__ import annotations

import pandas as pd
import torch

from bplf.flows import BiParallelAffineCoupling
from bplf.model import BPLF


def couplings(model: BPLF) -> list[tuple[str, BiParallelAffineCoupling]]:
    """Every coupling layer with its name (``levels.0.steps.3.coupling``), in flow order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, BiParallelAffineCoupling)]


@torch.no_grad()
def branch_contributions(model: BPLF, x: torch.Tensor) -> pd.DataFrame:
    """Root-mean-square output of the conv and the linear branch of every coupling on ``x``.

    Each coupling's input is captured with a forward pre-hook while ``x`` is encoded, and both
    branches are evaluated on its conditioning half x_b. A branch that is switched off reports 0.
    """
    inputs: dict[str, torch.Tensor] = {}
    layers = couplings(model)
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs.__setitem__(
        name, args[0])) for name, m in layers]
    try:
        model.encode(x)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, m in layers:
        x_b = inputs[name][:, m.channels_a :]

        def rms(branch, x_b=x_b) -> float:
            return 0.0 if branch is None else float(branch(x_b).pow(2).mean().sqrt())

        rows.append({"coupling": name, "level": int(name.split(".")[1]),
                     "conv": rms(m.conv_branch), "linear": rms(m.linear_branch)})
    return pd.DataFrame(rows)
