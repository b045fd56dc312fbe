"""The emotion label: where it enters a flow (``LabelConfig``) and the module that owns its
embedding, its null label and the checks of labels (``Label``).

The top prior always sees the label (when the model has classes). ``LabelConfig`` adds the split
priors, the couplings and a class head. The **null label** is label ``K = num_classes``: "no
emotion". Wherever a label selects a per-class offset (the top and split priors) the null label
selects none, so its density is the shared base Gaussian (``null_offset``); in the couplings it
is a learned embedding row of its own. Label dropout trains it, and only a model whose null
label was trained (``LabelConfig.null_trained``) can be guided: guidance extrapolates from it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from bplf.flows.coupling import CouplingCondition
from bplf.utils import check_fields

#: the flat ``ModelConfig`` fields configs saved before ``LabelConfig`` hold, and the
#: ``LabelConfig`` field each became
LEGACY_FIELDS = {"split_conditioning": "splits", "coupling_conditioning": "couplings",
                 "label_embedding_dim": "embedding_dim", "class_head": "class_head"}
#: weight names saved before the label was one module -> their names now
LEGACY_WEIGHTS = {"label_embedding.weight": "label.embedding.weight"}


@dataclass(frozen=True)
class LabelConfig:
    """Where the label enters a model beyond the top prior, and what it was trained with."""

    #: every split prior: a learned class offset of its mean and log-std per latent entry
    splits: bool = False
    #: every coupling's conditioner: a learned label embedding (``embedding_dim``, with a row for
    #: the null label) tiled to H x W and concatenated to its input; the map then needs a label
    couplings: bool = False
    embedding_dim: int = 8
    #: a linear head predicting the emotion from the mean-pooled top latent (Glow's hybrid
    #: objective, weighted by ``TrainConfig.class_loss_weight``)
    class_head: bool = False
    #: the null label was trained (label dropout > 0, set by the trainer from
    #: ``TrainConfig.label_dropout``): the model can be guided
    null_trained: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 1:
            raise ValueError(f"LabelConfig.embedding_dim must be a positive int, "
                             f"not {self.embedding_dim!r}")
        if self.null_trained and not self.couplings:
            raise ValueError("a trained null label (label dropout) needs label-conditioned "
                             "couplings: set label.couplings (LabelConfig(couplings=True))")

    @property
    def used(self) -> tuple[str, ...]:
        """The label inputs beyond the top prior that are on."""
        return tuple(n for n in ("splits", "couplings", "class_head") if getattr(self, n))

    def check_classes(self, num_classes: int) -> None:
        """Refuse label inputs in a model without classes."""
        if self.used and num_classes < 1:
            raise ValueError(f"label.{self.used[0]} needs labels: num_classes must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | LabelConfig) -> LabelConfig:
        """The config a saved dict describes (a ``LabelConfig`` is returned as it is)."""
        if isinstance(d, LabelConfig):
            return d
        check_fields(cls, d)
        return cls(**d)


def upgrade_config(d: dict, null_trained: bool | None = None) -> dict:
    """A ``ModelConfig`` dict with the flat label fields of older configs moved into its
    ``label`` entry (applied on top of it); ``null_trained``: what a config written before the
    field existed meant (its run's ``label_dropout > 0``), used where the dict does not say."""
    d = dict(d)
    label = d.get("label", {})
    label = dict(label.to_dict() if isinstance(label, LabelConfig) else label)
    legacy = "label" not in d
    for old, new in LEGACY_FIELDS.items():
        if old in d:
            label[new] = d.pop(old)
    if null_trained is not None and legacy:
        label.setdefault("null_trained", null_trained)
    d["label"] = label
    return d


def upgrade_state(state: dict, prefix: str = "") -> dict:
    """Rename, in place, the weights of ``state`` saved under ``LEGACY_WEIGHTS`` names."""
    for old, new in LEGACY_WEIGHTS.items():
        if prefix + old in state:
            state[prefix + new] = state.pop(prefix + old)
    return state


def null_offset(table: Tensor, y: Tensor | int) -> Tensor:
    """``table[y]`` of a (K, ...) table of per-class offsets; the null label K has none."""
    y = torch.as_tensor(y, dtype=torch.long, device=table.device)
    return torch.cat([table, torch.zeros_like(table[:1])])[y]


def check_labels(y: Tensor | int | Iterable[int] | None, num_classes: int, null: bool = False,
                 n: int | None = None, device: torch.device | str | None = None
                 ) -> Tensor | None:
    """``y`` as (n,) long labels on ``device`` (an int is repeated n times, None stays None);
    labels outside ``[0, num_classes)`` (with ``null``: ``[0, num_classes]``) and a model
    without classes given labels raise ``ValueError``."""
    if y is None:
        return None
    if num_classes == 0:
        raise ValueError("this prior is unconditional (num_classes=0): pass y=None")
    y = torch.as_tensor(y, dtype=torch.long, device=device)
    if y.ndim == 0:
        y = y.expand(1 if n is None else n)
    if n is not None and y.shape != (n,):
        raise ValueError(f"expected {n} labels, got shape {tuple(y.shape)}")
    # (checked on CPU labels only: on a GPU the check would stall every step)
    top = num_classes + null
    if not y.is_cuda and len(y) and (int(y.min()) < 0 or int(y.max()) >= top):
        raise ValueError(f"labels must lie in [0, {top}), got {y.tolist()}")
    return y


class Label(nn.Module):
    """The label as a model takes it: the checks of labels, the null label, and (with
    label-conditioned couplings) the embedding the couplings see."""

    def __init__(self, config: LabelConfig, num_classes: int):
        super().__init__()
        config.check_classes(num_classes)
        self.config = config
        self.num_classes = num_classes
        # exists only when asked for, so older state dicts load unchanged
        self.embedding = (nn.Embedding(num_classes + 1, config.embedding_dim)
                          if config.couplings else None)

    @property
    def required(self) -> bool:
        """Whether the map itself depends on the label (label-conditioned couplings)."""
        return self.config.couplings

    @property
    def null(self) -> int | None:
        """The null label ``num_classes`` ("no emotion") where the couplings have an embedding
        row for it; None otherwise (the priors alone then take ``y=None``)."""
        return self.num_classes if self.config.couplings else None

    def labels(self, y: Tensor | int | None, n: int,
               device: torch.device | str | None = None) -> Tensor | None:
        """``y`` checked as (n,) labels on ``device`` (``check_labels``); None is refused where
        the map needs a label."""
        if y is None and self.required:
            raise ValueError(
                "this model's couplings are label-conditioned (label.couplings), so its map "
                "depends on the emotion: pass y (an int or (N,) labels; "
                f"model.null_label = {self.null} for no emotion)")
        return check_labels(y, self.num_classes, self.null is not None, n, device)

    def embed(self, y: Tensor | int) -> Tensor:
        """The couplings' embedding of labels ``y`` -> (N, E)."""
        if self.embedding is None:
            raise ValueError("this model has no label embedding (label.couplings=False)")
        y = torch.as_tensor(y, dtype=torch.long, device=self.embedding.weight.device)
        return self.embedding(y.reshape(-1))

    def condition(self, y: Tensor | None, guidance: float = 1.0,
                  embedding: Tensor | None = None) -> CouplingCondition | None:
        """What the couplings see: the labels' embedding (or ``embedding`` itself) and, when
        guided (``guidance`` != 1), the null label's embedding; None without label-conditioned
        couplings."""
        if not self.required:
            if guidance != 1.0 or embedding is not None:
                raise ValueError("guidance and label embeddings need label-conditioned couplings "
                                 "(label.couplings=True)")
            return None
        e = self.embedding(y) if embedding is None else embedding
        null = self.embedding.weight[self.null][None] if guidance != 1.0 else None
        return CouplingCondition(e, null, float(guidance))
