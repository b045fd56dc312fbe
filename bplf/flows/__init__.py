"""Invertible building blocks of the flow, all with ``forward(x, cond=None) -> (y, logdet)``
and ``inverse(y, cond=None) -> x``."""

from bplf.flows.actnorm import ActNorm
from bplf.flows.base import FlowModule, FlowSequence
from bplf.flows.coupling import MIN_SCALE, BiParallelAffineCoupling, CouplingCondition
from bplf.flows.invconv import InvConv1x1
from bplf.flows.label import Label, LabelConfig
from bplf.flows.pca import PCALayer
from bplf.flows.permutation import Permutation
from bplf.flows.prior import ClassConditionalPrior, gaussian_log_prob, gaussian_sample
from bplf.flows.split import Split
from bplf.flows.squeeze import Squeeze

__all__ = [
    "MIN_SCALE",
    "ActNorm",
    "BiParallelAffineCoupling",
    "ClassConditionalPrior",
    "CouplingCondition",
    "FlowModule",
    "FlowSequence",
    "InvConv1x1",
    "Label",
    "LabelConfig",
    "PCALayer",
    "Permutation",
    "Split",
    "Squeeze",
    "gaussian_log_prob",
    "gaussian_sample",
]
