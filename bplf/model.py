"""The BPLF model: a multi-scale flow of bi-parallel affine couplings, and its presets.

Our reading of the architecture (the paper's text beyond its abstract is not public)::

    x --[PCA: global | zca]--> per level: squeeze --[patch PCA, level 0]--> K x FlowStep
      --> split (all but the last level) --> class-conditional Gaussian prior on the top latent
    FlowStep = ActNorm -> InvConv1x1 (or a fixed permutation) -> BiParallelAffineCoupling
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from bplf.flows import (
    MIN_SCALE,
    ActNorm,
    BiParallelAffineCoupling,
    ClassConditionalPrior,
    CouplingCondition,
    FlowModule,
    FlowSequence,
    InvConv1x1,
    PCALayer,
    Permutation,
    Split,
    Squeeze,
    gaussian_sample,
)
from bplf.flows.label import Label, LabelConfig, upgrade_config, upgrade_state
from bplf.guidance import NONE, Guidance, gaussian_guidance
from bplf.utils import check_fields

CONDITIONERS = ("both", "conv", "linear")
PCA_SCOPES = ("none", "patch", "zca", "global")
PERMUTATIONS = ("invconv", "reverse")
#: the editing methods of ``bplf.editing`` (``BPLF.edit_methods``: those a model supports)
EDIT_METHODS = ("mean", "prior", "reexpress", "swap", "gradient")
#: implementation name -> the module that registers it (``register_implementation``) when
#: imported; the core imports none of them, so an optional peer can import the core
IMPLEMENTATION_PROVIDERS = {"bplf": "bplf.model", "normflows": "bplf.research.peers"}
IMPLEMENTATIONS = tuple(IMPLEMENTATION_PROVIDERS)
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_implementation(name: str, factory: Callable[..., nn.Module],
                            provider: str | None = None) -> None:
    """Make ``ModelConfig(implementation=name)`` build ``factory(config)`` (a peer module calls
    this when imported; ``provider``: the module to import for it, for configs loaded later)."""
    _REGISTRY[name] = factory
    if provider is not None or name not in IMPLEMENTATION_PROVIDERS:
        IMPLEMENTATION_PROVIDERS[name] = provider or factory.__module__


#: what a saved config that lacks a field meant when it was written, where that differs from
#: today's default (models trained before the coupling scale floor had none)
LEGACY_DEFAULTS = {"coupling_min_scale": 0.0}


@dataclass
class ModelConfig:
    """Everything that defines a model's architecture (saved as JSON beside its weights).

    Defaults are the ``bplf`` preset: 3 levels of 8 steps, 3 layers of 3x3 convolutions in
    parallel with a linear branch, learned 1x1 convolutions, and a PCA whitening of the 2x2
    patches after the first squeeze ("patch": a PCA layer that keeps spatial locality, so the
    convolutions after it still see images; notebook 06 compares every scope).
    """

    image_size: int = 48
    channels: int = 1
    num_classes: int = 7
    levels: int = 3
    steps_per_level: int = 8
    hidden_channels: int = 64
    coupling_depth: int = 3
    kernel_size: int = 3
    hidden_kernel_size: int | None = None
    conditioner: str = "both"
    pca: str = "patch"
    pca_trainable: bool = False
    permutation: str = "invconv"
    #: "bplf" (this package's flow) or "normflows" (the peer Glow of bplf.research.peers)
    implementation: str = "bplf"
    #: floor of every coupling's scale, so each step stays invertible in float32 (notebook 03);
    #: a config saved before the floor existed means 0 (see ``LEGACY_DEFAULTS``)
    coupling_min_scale: float = MIN_SCALE
    #: where the emotion label enters beyond the top prior, and whether its null label was
    #: trained (``bplf.flows.label``); configs saved before it hold flat fields, translated on
    #: reading (``from_dict``)
    label: LabelConfig = field(default_factory=LabelConfig)

    def __post_init__(self) -> None:
        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(f"ModelConfig.{name} must be one of {options}, "
                                 f"not {getattr(self, name)!r}")

        choice("conditioner", CONDITIONERS)
        choice("pca", PCA_SCOPES)
        choice("permutation", PERMUTATIONS)
        choice("implementation", tuple(IMPLEMENTATION_PROVIDERS))
        for name in ("image_size", "channels", "levels", "steps_per_level", "hidden_channels",
                     "coupling_depth", "kernel_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, "
                                 f"not {getattr(self, name)!r}")
        if self.hidden_kernel_size is not None and self.hidden_kernel_size < 1:
            raise ValueError("ModelConfig.hidden_kernel_size must be None or a positive int")
        if not 0 <= self.coupling_min_scale < 1:
            raise ValueError("ModelConfig.coupling_min_scale must lie in [0, 1), not "
                             f"{self.coupling_min_scale!r}")
        if self.num_classes < 0:
            raise ValueError(f"ModelConfig.num_classes must be >= 0, not {self.num_classes}")
        if not isinstance(self.label, LabelConfig):
            raise ValueError(f"ModelConfig.label must be a LabelConfig, not {self.label!r}")
        self.label.check_classes(self.num_classes)
        if self.image_size % 2**self.levels:
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**levels = "
                             f"{2**self.levels} (each level squeezes by 2)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, null_trained: bool | None = None) -> ModelConfig:
        """The config a saved dict describes; fields it lacks take ``LEGACY_DEFAULTS`` first, and
        the flat label fields of older configs move into ``label`` (``null_trained``: what an
        older config's run meant, ``flows.label.upgrade_config``)."""
        d = upgrade_config(d, null_trained)
        check_fields(cls, d)
        return cls(**{**LEGACY_DEFAULTS, **d, "label": LabelConfig.from_dict(d["label"])})


#: Named configurations of the same code, for the ablations and baselines.
PRESETS: dict[str, ModelConfig] = {
    "bplf": ModelConfig(),
    "glow": ModelConfig(conditioner="conv", kernel_size=3, hidden_kernel_size=1, pca="none"),
    "realnvp": ModelConfig(conditioner="conv", kernel_size=3, hidden_kernel_size=1, pca="none",
                           permutation="reverse"),
    # normflows' Glow, hidden width chosen to match the glow preset's parameter count
    "glow-normflows": ModelConfig(hidden_channels=60, conditioner="conv", kernel_size=3,
                                  hidden_kernel_size=1, pca="none", implementation="normflows"),
}


class FlowStep(FlowModule):
    """ActNorm -> InvConv1x1 (or a fixed permutation) -> BiParallelAffineCoupling."""

    def __init__(self, channels: int, cfg: ModelConfig):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.permute = (InvConv1x1(channels) if cfg.permutation == "invconv"
                        else Permutation(channels, "reverse"))
        self.coupling = BiParallelAffineCoupling(
            channels, cfg.hidden_channels, depth=cfg.coupling_depth, kernel_size=cfg.kernel_size,
            hidden_kernel_size=cfg.hidden_kernel_size, branches=cfg.conditioner,
            min_scale=cfg.coupling_min_scale,
            cond_channels=cfg.label.embedding_dim if cfg.label.couplings else 0)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, ld1 = self.actnorm(x)
        x, ld2 = self.permute(x)
        x, ld3 = self.coupling(x, cond)
        return x, ld1 + ld2 + ld3

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.actnorm.inverse(self.permute.inverse(self.coupling.inverse(y, cond)))


class Level(nn.Module):
    """One scale: squeeze, (patch PCA), ``steps_per_level`` flow steps, (split)."""

    def __init__(self, in_channels: int, size: int, cfg: ModelConfig, patch_pca: bool,
                 split: bool):
        super().__init__()
        channels = 4 * in_channels
        self.squeeze = Squeeze()
        self.pca = (PCALayer(channels, size // 2, "patch", trainable=cfg.pca_trainable)
                    if patch_pca else None)
        self.steps = FlowSequence(*[FlowStep(channels, cfg) for _ in range(cfg.steps_per_level)])
        self.split = (Split(channels, cfg.num_classes if cfg.label.splits else 0,
                            size // 2) if split else None)
        self.out_channels = self.split.kept_channels if split else channels

    def flow(self, x: Tensor, fit_pca: bool = False,
             cond: CouplingCondition | None = None) -> tuple[Tensor, Tensor]:
        """Squeeze, PCA and steps (everything but the split): ``(h, logdet)``."""
        h, logdet = self.squeeze(x)
        if self.pca is not None:
            if fit_pca:
                self.pca.fit(h)
            h, ld = self.pca(h)
            logdet = logdet + ld
        h, ld = self.steps(h, cond)
        return h, logdet + ld

    def flow_inverse(self, h: Tensor, cond: CouplingCondition | None = None) -> Tensor:
        h = self.steps.inverse(h, cond)
        if self.pca is not None:
            h = self.pca.inverse(h)
        return self.squeeze.inverse(h)


class DensityModel(nn.Module):
    """What every model a ``ModelConfig`` builds shares: ``BPLF`` and the peers of
    ``bplf.research.peers``."""

    config: ModelConfig

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) scalar parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def num_dims(self) -> int:
        """D = C * H * W, the number of dimensions of an image."""
        return self.config.channels * self.config.image_size**2

    @property
    def map_depends_on_label(self) -> bool:
        """Whether the invertible map itself depends on ``y``: then ``encode``, ``decode`` and
        the round trip need the faces' labels (label-conditioned couplings)."""
        return False

    @property
    def guidable(self) -> bool:
        """Whether the model can be guided (``bplf.guidance``): it has a trained null label."""
        return False

    @property
    def edit_methods(self) -> tuple[str, ...]:
        """The editing methods of ``bplf.editing`` the model supports (none without the flow's
        priors: the peers)."""
        return ()


class BPLF(DensityModel):
    """Multi-scale bi-parallel linear flow with a class-conditional prior.

    Latents (``encode``/``decode``): a list with one tensor per split level, the factored-out
    half of that level, shape (N, C_l, H/2^(l+1), W/2^(l+1)), then the top latent last. Every
    factored-out half is kept, so ``decode(encode(x, y), y) == x`` up to float rounding.

    Where the label ``y`` enters (``ModelConfig.label``, owned by ``self.label``, a
    ``flows.label.Label``): the top prior always; every split prior with ``label.splits``; every
    coupling with ``label.couplings``, and then the map itself depends on ``y``: ``encode``,
    ``decode`` and ``log_prob`` need it (``y=None`` is refused; ``null_label`` is the learned
    "no emotion" label of label dropout). ``guidance``
    (``encode``/``decode``/``sample``, label-conditioned couplings only) extrapolates every
    coupling from the null label toward ``y`` (see ``flows.CouplingCondition``): a guided sample
    is no longer a draw from the model's density, so likelihoods always use guidance 1.
    """

    #: std of the Gaussian noise on the faces this density was trained on (model space; set from
    #: ``TrainConfig.noise_std`` by the trainer and ``load_checkpoint``): 0 for a density of
    #: clean faces, else p_sigma = p * N(0, sigma^2), and ``denoise`` undoes it
    noise_std: float = 0.0

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        global_pca = cfg.pca in ("global", "zca")
        self.pca = (PCALayer(cfg.channels, cfg.image_size, cfg.pca, trainable=cfg.pca_trainable)
                    if global_pca else None)
        levels, channels, size = [], cfg.channels, cfg.image_size
        for i in range(cfg.levels):
            level = Level(channels, size, cfg, patch_pca=cfg.pca == "patch" and i == 0,
                          split=i < cfg.levels - 1)
            levels.append(level)
            channels, size = level.out_channels, size // 2
        self.levels = nn.ModuleList(levels)
        self.label = Label(cfg.label, cfg.num_classes)
        self.top_prior = ClassConditionalPrior((channels, size, size), cfg.num_classes,
                                               null_label=self.label.null is not None)
        # the class head exists only when asked for, so older state dicts load unchanged
        if cfg.label.class_head:
            self.class_head = nn.Linear(channels, cfg.num_classes)
        # weights saved before the label was one module
        self.register_load_state_dict_pre_hook(
            lambda module, state, prefix, *args: upgrade_state(state, prefix))

    # -- inspection ---------------------------------------------------------------------------
    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of each latent in ``encode``'s list (factored-out halves, then the top)."""
        shapes, size = [], self.config.image_size
        for level in self.levels:
            size //= 2
            if level.split is not None:
                shapes.append((level.split.z_channels, size, size))
        shapes.append(self.top_prior.shape)
        return shapes

    @property
    def map_depends_on_label(self) -> bool:
        """Whether the invertible map itself depends on ``y`` (label-conditioned couplings)."""
        return self.label.required

    @property
    def null_label(self) -> int | None:
        """The learned "no emotion" label (``num_classes``) of label-conditioned couplings,
        used by label dropout and guidance; None for models without one."""
        return self.label.null

    @property
    def guidable(self) -> bool:
        """Whether guidance has a trained null label to extrapolate from (label dropout)."""
        return self.config.label.null_trained

    @property
    def edit_methods(self) -> tuple[str, ...]:
        """The editing methods this model supports (``swap`` needs label-conditioned
        couplings)."""
        return tuple(m for m in EDIT_METHODS if self.map_depends_on_label or m != "swap")

    def _labels(self, y: Tensor | int | None, n: int) -> Tensor | None:
        """``y`` as (n,) long labels, checked by the label module (None stays None where the
        model allows it)."""
        return self.label.labels(y, n, self.top_prior.base_mean.device)

    def _condition(self, y: Tensor | None, guidance: float = 1.0,
                   embedding: Tensor | None = None) -> CouplingCondition | None:
        """What the couplings see (``flows.label.Label.condition``)."""
        return self.label.condition(y, guidance, embedding)

    def _conditions(self, y: Tensor | None, guidance: Guidance = NONE,
                    embedding: Tensor | None = None, source: Tensor | None = None,
                    intensity: float = 1.0) -> list[CouplingCondition | None]:
        """What the couplings of each level see: ``_condition`` with the level's coupling scale
        (``Guidance.scales``). With ``source`` labels (an edit), the embedding moves from the
        source's to the target's and the scale from 1 to the guided one as ``intensity`` goes
        from 0 to 1, so intensity 0 is the plain source condition."""
        if source is not None and self.map_depends_on_label and embedding is None:
            e_s, e_t = self.label.embed(source), self.label.embed(y)
            embedding = e_s + intensity * (e_t - e_s)
        out = []
        for i in range(len(self.levels)):
            scale = guidance.scales(i, len(self.levels))[1]
            if source is not None:
                scale = 1 + intensity * (scale - 1)
            out.append(self._condition(y, scale, embedding))
        return out

    def _prior_params(self, split: Split | None, kept: Tensor | None, y: Tensor | None,
                      scale: float = 1.0, source: Tensor | None = None,
                      intensity: float = 1.0) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the top prior (``split=None``) or of a split's prior given its
        kept half: for labels ``y``, guided by the Gaussian rule at ``scale`` (from the null
        label's Gaussian, ``bplf.guidance.gaussian_guidance``); with ``source`` labels, moved from
        the source's plain conditional to that by ``intensity`` (in mean and log-std)."""
        def params(labels: Tensor | None) -> tuple[Tensor, Tensor]:
            return (self.top_prior.params(labels) if split is None
                    else split.prior_params(kept, labels))

        mean, log_std = params(y)
        if scale != 1.0:
            mean, log_std = gaussian_guidance(mean, log_std, *params(None), scale)
        if source is not None:
            m_s, l_s = params(source)
            mean, log_std = m_s + intensity * (mean - m_s), l_s + intensity * (log_std - l_s)
        return mean, log_std

    def embed(self, y: Tensor | int) -> Tensor:
        """The couplings' label embedding of ``y`` -> (N, E) (label-conditioned couplings)."""
        return self.label.embed(y)

    def class_logits(self, top: Tensor) -> Tensor:
        """The class head's logits (N, K) from the top latent (mean-pooled over H x W)."""
        if not self.config.label.class_head:
            raise ValueError("this model has no class head (label.class_head=False)")
        return self.class_head(top.flatten(2).mean(2))

    # -- the forward direction ----------------------------------------------------------------
    def _encode(self, x: Tensor, fit_pca: bool = False, y: Tensor | None = None,
                cond: CouplingCondition | list | None = None
                ) -> tuple[list[Tensor], Tensor, Tensor, list[Tensor]]:
        """``(latents, sum of log-determinants, sum of split log-priors given y, kept halves)``;
        ``y``: checked labels (or None), ``cond``: what the couplings see (one condition, or
        one per level)."""
        conds = cond if isinstance(cond, list) else [cond] * len(self.levels)
        logdet = x.new_zeros(x.shape[0])
        split_logp = x.new_zeros(x.shape[0])
        h = x
        if self.pca is not None:
            if fit_pca:
                self.pca.fit(h)
            h, ld = self.pca(h)
            logdet = logdet + ld
        zs, kept = [], []
        for level, level_cond in zip(self.levels, conds, strict=True):
            h, ld = level.flow(h, fit_pca, level_cond)
            logdet = logdet + ld
            if level.split is not None:
                h, z, lp = level.split.split(h, y)
                zs.append(z)
                kept.append(h)
                split_logp = split_logp + lp
        zs.append(h)
        return zs, logdet, split_logp, kept

    def _log_prob(self, x: Tensor, y: Tensor | int | None) -> tuple[Tensor, Tensor]:
        labels = self._labels(y, len(x))
        zs, logdet, split_logp, _ = self._encode(x, y=labels, cond=self._condition(labels))
        return logdet + split_logp + self.top_prior.log_prob(zs[-1], labels), zs[-1]

    def log_prob(self, x: Tensor, y: Tensor | int | None = None) -> Tensor:
        """log p(x | y) in nats per image -> (N,); ``x`` float (N, C, H, W) in [-0.5, 0.5).

        ``y=None`` uses the top prior's shared base Gaussian (see ``ClassConditionalPrior``) and
        the split priors without their class offsets; refused when the couplings need a label.
        """
        return self._log_prob(x, y)[0]

    def log_prob_and_logits(self, x: Tensor, y: Tensor | int | None = None
                            ) -> tuple[Tensor, Tensor | None]:
        """``(log p(x | y), class-head logits or None)`` from one pass (the hybrid objective)."""
        lp, top = self._log_prob(x, y)
        return lp, self.class_logits(top) if self.config.label.class_head else None

    def log_prob_classes(self, x: Tensor) -> Tensor:
        """log p(x | y=k) for every class k -> (N, K) nats (N x 1 for an unconditional model).
        When the map does not depend on y, ``x`` is encoded once and only the priors are
        evaluated K times; with label-conditioned couplings it is encoded once per class."""
        k_classes = self.config.num_classes
        if self.map_depends_on_label:
            return torch.stack([self.log_prob(x, k) for k in range(k_classes)], dim=1)
        zs, logdet, split_logp, kept = self._encode(x)
        top = zs[-1]
        labels = [torch.full((len(x),), k, dtype=torch.long, device=x.device)
                  for k in range(k_classes)] or [None]  # unconditional: one column
        splits = [level.split for level in self.levels if level.split is not None]
        if not self.config.label.splits:
            per_class = [self.top_prior.log_prob(top, y) for y in labels]
            return (logdet + split_logp)[:, None] + torch.stack(per_class, dim=1)
        per_class = [self.top_prior.log_prob(top, y)
                     + sum(s.log_prob(z, h, y) for s, z, h in zip(splits, zs, kept, strict=False))
                     for y in labels]
        return logdet[:, None] + torch.stack(per_class, dim=1)

    def encode(self, x: Tensor, y: Tensor | int | None = None,
               guidance: Guidance | float = 1.0) -> list[Tensor]:
        """Every latent of ``x``: the factored-out halves, then the top latent.

        ``y`` matters only with label-conditioned couplings (then it is required); otherwise
        it is accepted for symmetry, since only the priors depend on it. ``guidance``: its
        coupling rule (``bplf.guidance``), for a decode with the same guidance.
        """
        labels = self._labels(y, len(x)) if self.map_depends_on_label else None
        return self._encode(x, cond=self._conditions(labels, Guidance.of(guidance)))[0]

    def encode_noise(self, x: Tensor, y: Tensor | int | None = None) -> list[Tensor]:
        """The standardised noise of every latent of ``x`` given ``y``: each latent minus its
        prior's mean, over its std (the split priors given their kept halves), so that
        ``decode_noise(encode_noise(x, y), y) == x``. A sample is ``decode_noise`` of
        temperature-scaled standard normal noise; an edit re-expresses the same noise under
        another emotion (``decode_noise(..., source=y)``)."""
        labels = self._labels(y, len(x))
        zs, _, _, kept = self._encode(x, y=labels, cond=self._condition(labels))
        splits = [level.split for level in self.levels if level.split is not None]
        eps = [(z - m) * torch.exp(-s)
               for z, (m, s) in zip(zs, (sp.prior_params(h, labels)
                                          for sp, h in zip(splits, kept, strict=True)),
                                    strict=False)]
        mean, log_std = self.top_prior.params(labels)
        return [*eps, (zs[-1] - mean) * torch.exp(-log_std)]

    @torch.no_grad()
    def initialize(self, x: Tensor, y: Tensor | None = None, pca_x: Tensor | None = None) -> BPLF:
        """All data-dependent initialisation on a batch: PCA fits, then ActNorm statistics.

        ``pca_x``: fit the PCA layer on these images instead of ``x`` (a global or zca PCA needs
        at least D = C*H*W of them to be full rank). ``y``: the batch's labels (needed by
        label-conditioned couplings; nothing label-dependent is initialised from data; without
        it they see the null label). Returns the model.
        """
        for m in self.modules():
            if isinstance(m, ActNorm):
                m.reset()
        cond = None
        if self.map_depends_on_label:
            cond = self._condition(self._labels(self.null_label if y is None else y, len(x)))
        if pca_x is None:
            self._encode(x, fit_pca=True, cond=cond)
            return self
        pca_x = pca_x.to(x)
        if self.pca is not None:
            self.pca.fit(pca_x)
        elif self.levels[0].pca is not None:
            self.levels[0].pca.fit(self.levels[0].squeeze(pca_x)[0])
        self._encode(x, cond=cond)
        return self

    # -- the inverse direction ----------------------------------------------------------------
    def _decode(self, zs: list[Tensor | None], temperature: float = 1.0,
                generator: torch.Generator | None = None, with_log_prob: bool = False,
                y: Tensor | None = None, guidance: Guidance = NONE,
                embedding: Tensor | None = None, noise: bool = False,
                source: Tensor | None = None, intensity: float = 1.0, n: int | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """The image of latents ``zs`` (factored-out halves, then the top), decoded coarse to fine.

        A ``None`` entry is drawn from its prior at ``temperature``; with ``noise`` the given
        entries are standardised noise (``encode_noise``), placed under their prior. The priors
        and couplings follow ``guidance`` and, for an edit, move from ``source`` by
        ``intensity`` (``_prior_params``, ``_conditions``). ``n``: the batch size when no
        entry is given."""
        n_split = sum(level.split is not None for level in self.levels)
        if len(zs) != n_split + 1:
            raise ValueError(f"expected {n_split + 1} latents (see latent_shapes()), got {len(zs)}")
        given = next((z for z in zs if z is not None), None)
        n = len(given) if given is not None else n
        conds = self._conditions(y, guidance, embedding, source, intensity)
        num_levels = len(self.levels)

        def place(z: Tensor | None, split: Split | None, kept: Tensor | None,
                  level: int) -> Tensor:
            if z is not None and not noise:
                return z
            scale = guidance.scales(level, num_levels)[0]
            mean, log_std = self._prior_params(split, kept, y, scale, source, intensity)
            shape = (n, *mean.shape[1:])
            mean, log_std = mean.expand(shape), log_std.expand(shape)
            if z is None:
                return gaussian_sample(mean, log_std, temperature, generator)
            return mean + log_std.exp() * z

        h = place(zs[-1], None, None, num_levels - 1)
        logp = h.new_zeros(h.shape[0]) if with_log_prob else None
        k = n_split - 1
        for i in reversed(range(num_levels)):
            level = self.levels[i]
            if level.split is not None:
                z = place(zs[k], level.split, h, i)
                k -= 1
                if with_log_prob:
                    logp = logp + level.split.log_prob(z, h, y)
                h = level.split.merge(h, z)
            h = level.flow_inverse(h, conds[i])
        if self.pca is not None:
            h = self.pca.inverse(h)
        return h, logp

    def decode(self, z: list[Tensor | None], y: Tensor | int | None = None,
               temperature: float = 1.0, guidance: Guidance | float = 1.0,
               embedding: Tensor | None = None) -> Tensor:
        """Exact inverse of :meth:`encode` (with the same ``y`` and ``guidance``). A ``None``
        factored-out latent is drawn from its prior given ``y`` at ``temperature`` (the top
        latent must be given). ``embedding`` (N or 1, E): decode with this label embedding in
        the couplings instead of ``y``'s (label-conditioned couplings; ``swap`` editing)."""
        zs = list(z)
        if zs[-1] is None:
            raise ValueError("decode needs the top latent (sample draws every latent)")
        n = len(zs[-1])
        labels = (None if y is None and embedding is not None
                  else self._labels(y, n))
        return self._decode(zs, temperature, y=labels, guidance=Guidance.of(guidance),
                            embedding=embedding)[0]

    def decode_noise(self, eps: list[Tensor], y: Tensor | int | None = None,
                     guidance: Guidance | float = 1.0, source: Tensor | int | None = None,
                     intensity: float = 1.0) -> Tensor:
        """The image of standardised noise ``eps`` (``encode_noise``) under emotion ``y``: every
        latent placed under its (guided) prior. With ``source`` (the labels ``eps`` was encoded
        with), priors, label embedding and guidance move from the source's plain conditional
        toward ``y``'s guided one by ``intensity``: 0 gives the encoded face back exactly, 1
        re-expresses every latent under the target (the ``reexpress`` edit)."""
        n = len(eps[-1])
        labels = self._labels(y, n)
        src = None if source is None else self._labels(source, n)
        return self._decode(list(eps), y=labels, guidance=Guidance.of(guidance), noise=True,
                            source=src, intensity=intensity)[0]

    def prior_log_prob(self, z: list[Tensor], y: Tensor | int | None = None) -> Tensor:
        """log density of a latent list under the priors (top prior given ``y``, and each
        split's prior given its kept half and ``y``, recomputed in the inverse direction)
        -> (N,)."""
        labels = self._labels(y, len(z[-1]))
        _, split_logp = self._decode(list(z), with_log_prob=True, y=labels)
        return split_logp + self.top_prior.log_prob(z[-1], labels)

    def denoise(self, x: Tensor, y: Tensor | int | None = None,
                sigma: float | None = None) -> Tensor:
        """One Tweedie step, ``x + sigma^2 grad_x log p_sigma(x | y)``: for a model of the
        density of noisy faces (``noise_std`` = sigma), the posterior mean of the clean face
        given the noisy ``x`` (Tweedie's formula; TarFlow, Zhai et al. 2024). ``sigma``: the
        training noise std by default; 0 returns ``x``."""
        sigma = self.noise_std if sigma is None else sigma
        if sigma == 0:
            return x
        with torch.enable_grad():
            noisy = x.detach().requires_grad_(True)
            (score,) = torch.autograd.grad(self.log_prob(noisy, y).sum(), noisy)
        return (x + sigma**2 * score).detach()

    def denoises(self, denoise: bool | None = None) -> bool:
        """Whether ``sample`` takes the denoising step: ``denoise`` if given, else exactly when
        the model is a density of noisy faces (``noise_std`` > 0), whose drawn samples carry
        that noise and whose denoised ones are its estimate of the clean face. (Edits decode the
        latents of a clean photo, and at intensity 0 give it back unchanged: they take the step
        only when asked, ``bplf.editing.decode_edit``.)"""
        return self.noise_std > 0 if denoise is None else bool(denoise)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               guidance: Guidance | float = 1.0, denoise: bool | None = None) -> Tensor:
        """``n`` images (N, C, H, W) in about [-0.5, 0.5), of emotion ``y`` (None, int, (n,)),
        every latent drawn at ``temperature`` (0.6-0.8 gives cleaner faces than 1.0).
        ``guidance`` (a ``bplf.guidance.Guidance``; a number is the coupling rule's scale)
        strengthens the expression: the result is then no longer a draw from the model's
        density. The priors' rule needs a model trained with label dropout, the couplings'
        label-conditioned couplings too. ``denoise``: one Tweedie step given ``y`` after
        sampling (``denoise``); by default taken by a model trained on noisy faces
        (``denoises``)."""
        labels = self._labels(y, n)
        zs: list[Tensor | None] = [None] * len(self.latent_shapes())
        x = self._decode(zs, temperature, generator, y=labels,
                         guidance=Guidance.of(guidance), n=n)[0]
        return self.denoise(x, labels) if self.denoises(denoise) else x


register_implementation("bplf", BPLF)


def build_model(preset: str = "bplf", **overrides) -> DensityModel:
    """A fresh model from a named preset (``PRESETS``), with any ``ModelConfig`` field overridden.

    >>> build_model("glow", image_size=16, levels=2, hidden_channels=8)  # doctest: +SKIP
    """
    return make_model(configure(preset, **overrides))


def configure(preset: str = "bplf", **overrides) -> ModelConfig:
    """The config of a named preset (``PRESETS``) with ``ModelConfig`` fields overridden;
    ``label`` may be a ``LabelConfig`` or a dict of its fields."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {sorted(PRESETS)}")
    check_fields(ModelConfig, overrides)
    label = LabelConfig.from_dict(overrides.pop("label", PRESETS[preset].label))
    return dataclasses.replace(PRESETS[preset], **overrides, label=label)


def make_model(config: ModelConfig) -> DensityModel:
    """The model a config describes: the implementation it names in ``implementation``, looked
    up in the registry (its provider module, e.g. the optional peers, imported on first use)."""
    name = config.implementation
    if name not in _REGISTRY:
        importlib.import_module(IMPLEMENTATION_PROVIDERS[name])
    if name not in _REGISTRY:
        raise ValueError(f"module {IMPLEMENTATION_PROVIDERS[name]} did not register the "
                         f"implementation {name!r}")
    return _REGISTRY[name](config)


@torch.no_grad()
def warm_start(model: nn.Module, source: dict[str, Tensor]) -> list[str]:
    """Start ``model`` from the weights ``source`` of a model with fewer label inputs (the
    shipped top-prior model, for a label-conditioned one), so that it computes exactly the
    source's density for every label before it trains.

    Tensors of equal shape are copied. A weight the label reaches through extra input channels
    (a coupling's first convolution and its linear branch, the label embedding tiled after
    ``x_b``) takes the source in its leading channels and zeros in the new ones. Tensors the
    source lacks (split-prior class offsets, the label embedding) keep their initialisation:
    offsets start at zero, and an embedding multiplied by zero weights does not change the map.
    Returns the names not copied whole; anything else that does not fit raises ``ValueError``.
    """
    target = model.state_dict()  # its tensors share the model's storage: writing them writes it
    source = upgrade_state(dict(source))
    unknown = sorted(set(source) - set(target))
    if unknown:
        raise ValueError(f"the source weights have tensors this model lacks: {unknown[:5]}")
    partial = []
    for name, value in target.items():
        if name not in source:
            partial.append(name)
            continue
        src = source[name].to(value.dtype)
        if src.shape == value.shape:
            value.copy_(src)
        elif (src.ndim == value.ndim == 4 and src.shape[0] == value.shape[0]
              and src.shape[2:] == value.shape[2:] and src.shape[1] < value.shape[1]):
            value.zero_()
            value[:, : src.shape[1]] = src
            partial.append(name)
        else:
            raise ValueError(f"{name}: source shape {tuple(src.shape)} does not fit "
                             f"{tuple(value.shape)} (a model with another architecture?)")
    return partial
