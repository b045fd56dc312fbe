"""The BPLF model: a multi-scale flow of bi-parallel affine couplings, and its presets.

Our reading of the architecture (the paper's text beyond its abstract is not public)::

    x --[PCA: global | zca]--> per level: squeeze --[patch PCA, level 0]--> K x FlowStep
      --> split (all but the last level) --> class-conditional Gaussian prior on the top latent
    FlowStep = ActNorm -> InvConv1x1 (or a fixed permutation) -> BiParallelAffineCoupling
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from bplf.flows import (
    ActNorm,
    BiParallelAffineCoupling,
    ClassConditionalPrior,
    FlowModule,
    FlowSequence,
    InvConv1x1,
    PCALayer,
    Permutation,
    Split,
    Squeeze,
)
from bplf.utils import check_fields

CONDITIONERS = ("both", "conv", "linear")
PCA_SCOPES = ("none", "patch", "zca", "global")
PERMUTATIONS = ("invconv", "reverse")
IMPLEMENTATIONS = ("bplf", "normflows")


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
    #: "bplf" (this package's flow) or "normflows" (the peer Glow of bplf.peers)
    implementation: str = "bplf"

    def __post_init__(self) -> None:
        def choice(name: str, options: tuple[str, ...]) -> None:
            if getattr(self, name) not in options:
                raise ValueError(f"ModelConfig.{name} must be one of {options}, "
                                 f"not {getattr(self, name)!r}")

        choice("conditioner", CONDITIONERS)
        choice("pca", PCA_SCOPES)
        choice("permutation", PERMUTATIONS)
        choice("implementation", IMPLEMENTATIONS)
        for name in ("image_size", "channels", "levels", "steps_per_level", "hidden_channels",
                     "coupling_depth", "kernel_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, "
                                 f"not {getattr(self, name)!r}")
        if self.hidden_kernel_size is not None and self.hidden_kernel_size < 1:
            raise ValueError("ModelConfig.hidden_kernel_size must be None or a positive int")
        if self.num_classes < 0:
            raise ValueError(f"ModelConfig.num_classes must be >= 0, not {self.num_classes}")
        if self.image_size % 2**self.levels:
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**levels = "
                             f"{2**self.levels} (each level squeezes by 2)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        check_fields(cls, d)
        return cls(**d)


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
            hidden_kernel_size=cfg.hidden_kernel_size, branches=cfg.conditioner)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x, ld1 = self.actnorm(x)
        x, ld2 = self.permute(x)
        x, ld3 = self.coupling(x)
        return x, ld1 + ld2 + ld3

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.actnorm.inverse(self.permute.inverse(self.coupling.inverse(y)))


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
        self.split = Split(channels) if split else None
        self.out_channels = self.split.kept_channels if split else channels

    def flow(self, x: Tensor, fit_pca: bool = False) -> tuple[Tensor, Tensor]:
        """Squeeze, PCA and steps (everything but the split): ``(h, logdet)``."""
        h, logdet = self.squeeze(x)
        if self.pca is not None:
            if fit_pca:
                self.pca.fit(h)
            h, ld = self.pca(h)
            logdet = logdet + ld
        h, ld = self.steps(h)
        return h, logdet + ld

    def flow_inverse(self, h: Tensor) -> Tensor:
        h = self.steps.inverse(h)
        if self.pca is not None:
            h = self.pca.inverse(h)
        return self.squeeze.inverse(h)


class DensityModel(nn.Module):
    """What every model a ``ModelConfig`` builds shares: ``BPLF`` and the peers of
    ``bplf.peers``."""

    config: ModelConfig

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) scalar parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def num_dims(self) -> int:
        """D = C * H * W, the number of dimensions of an image."""
        return self.config.channels * self.config.image_size**2


class BPLF(DensityModel):
    """Multi-scale bi-parallel linear flow with a class-conditional prior.

    Latents (``encode``/``decode``): a list with one tensor per split level, the factored-out
    half of that level, shape (N, C_l, H/2^(l+1), W/2^(l+1)), then the top latent last. Every
    factored-out half is kept, so ``decode(encode(x)) == x`` up to float rounding.
    """

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
        self.top_prior = ClassConditionalPrior((channels, size, size), cfg.num_classes)

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

    # -- the forward direction ----------------------------------------------------------------
    def _encode(self, x: Tensor, fit_pca: bool = False) -> tuple[list[Tensor], Tensor, Tensor]:
        """``(latents, sum of log-determinants, sum of split log-priors)``."""
        logdet = x.new_zeros(x.shape[0])
        split_logp = x.new_zeros(x.shape[0])
        h = x
        if self.pca is not None:
            if fit_pca:
                self.pca.fit(h)
            h, ld = self.pca(h)
            logdet = logdet + ld
        zs = []
        for level in self.levels:
            h, ld = level.flow(h, fit_pca)
            logdet = logdet + ld
            if level.split is not None:
                h, z, lp = level.split.split(h)
                zs.append(z)
                split_logp = split_logp + lp
        zs.append(h)
        return zs, logdet, split_logp

    def log_prob(self, x: Tensor, y: Tensor | int | None = None) -> Tensor:
        """log p(x | y) in nats per image -> (N,); ``x`` float (N, C, H, W) in [-0.5, 0.5).

        ``y=None`` uses the top prior's shared base Gaussian (see ``ClassConditionalPrior``).
        """
        zs, logdet, split_logp = self._encode(x)
        return logdet + split_logp + self.top_prior.log_prob(zs[-1], y)

    def log_prob_classes(self, x: Tensor) -> Tensor:
        """log p(x | y=k) for every class k -> (N, K) nats (N x 1 for an unconditional model).
        The map does not depend on y: ``x`` is encoded once, the top prior evaluated K times."""
        zs, logdet, split_logp = self._encode(x)
        top = zs[-1]
        labels = [torch.full((len(x),), k, dtype=torch.long, device=x.device)
                  for k in range(self.config.num_classes)] or [None]  # unconditional: one column
        per_class = [self.top_prior.log_prob(top, y) for y in labels]
        return (logdet + split_logp)[:, None] + torch.stack(per_class, dim=1)

    def encode(self, x: Tensor, y: Tensor | int | None = None) -> list[Tensor]:
        """Every latent of ``x``: the factored-out halves, then the top latent.

        ``y`` is accepted for symmetry: the map does not depend on it, only the top prior does.
        """
        return self._encode(x)[0]

    @torch.no_grad()
    def initialize(self, x: Tensor, y: Tensor | None = None, pca_x: Tensor | None = None) -> BPLF:
        """All data-dependent initialisation on a batch: PCA fits, then ActNorm statistics.

        ``pca_x``: fit the PCA layer on these images instead of ``x`` (a global or zca PCA needs
        at least D = C*H*W of them to be full rank). ``y`` is accepted for symmetry (nothing
        label-dependent is initialised from data). Returns the model.
        """
        for m in self.modules():
            if isinstance(m, ActNorm):
                m.reset()
        if pca_x is None:
            self._encode(x, fit_pca=True)
            return self
        pca_x = pca_x.to(x)
        if self.pca is not None:
            self.pca.fit(pca_x)
        elif self.levels[0].pca is not None:
            self.levels[0].pca.fit(self.levels[0].squeeze(pca_x)[0])
        self._encode(x)
        return self

    # -- the inverse direction ----------------------------------------------------------------
    def _decode(self, zs: list[Tensor | None], temperature: float = 1.0,
                generator: torch.Generator | None = None,
                with_log_prob: bool = False) -> tuple[Tensor, Tensor | None]:
        n_split = sum(level.split is not None for level in self.levels)
        if len(zs) != n_split + 1:
            raise ValueError(f"expected {n_split + 1} latents (see latent_shapes()), got {len(zs)}")
        h = zs[-1]
        logp = h.new_zeros(h.shape[0]) if with_log_prob else None
        k = n_split - 1
        for level in reversed(self.levels):
            if level.split is not None:
                z = zs[k]
                k -= 1
                if z is None:
                    z = level.split.sample(h, temperature, generator)
                if with_log_prob:
                    logp = logp + level.split.log_prob(z, h)
                h = level.split.merge(h, z)
            h = level.flow_inverse(h)
        if self.pca is not None:
            h = self.pca.inverse(h)
        return h, logp

    def decode(self, z: list[Tensor | None], y: Tensor | int | None = None,
               temperature: float = 1.0) -> Tensor:
        """Exact inverse of :meth:`encode`. A ``None`` factored-out latent is drawn from its
        conditional prior at ``temperature`` (the top latent must be given)."""
        return self._decode(list(z), temperature)[0]

    def prior_log_prob(self, z: list[Tensor], y: Tensor | int | None = None) -> Tensor:
        """log density of a latent list under the priors (top prior given ``y``, and each
        split's prior given its kept half, recomputed in the inverse direction) -> (N,)."""
        _, split_logp = self._decode(list(z), with_log_prob=True)
        return split_logp + self.top_prior.log_prob(z[-1], y)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """``n`` images (N, C, H, W) in about [-0.5, 0.5), of emotion ``y`` (None, int, (n,)),
        every latent drawn at ``temperature`` (0.6-0.8 gives cleaner faces than 1.0)."""
        top = self.top_prior.sample(n, y, temperature, generator)
        zs: list[Tensor | None] = [None] * (len(self.latent_shapes()) - 1)
        return self._decode([*zs, top], temperature, generator)[0]


def build_model(preset: str = "bplf", **overrides) -> DensityModel:
    """A fresh model from a named preset (``PRESETS``), with any ``ModelConfig`` field overridden.

    >>> build_model("glow", image_size=16, levels=2, hidden_channels=8)  # doctest: +SKIP
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {sorted(PRESETS)}")
    check_fields(ModelConfig, overrides)
    return make_model(dataclasses.replace(PRESETS[preset], **overrides))


def make_model(config: ModelConfig) -> DensityModel:
    """The model a config describes: a ``BPLF``, or the peer it names in ``implementation``."""
    if config.implementation == "normflows":
        from bplf.peers import NormflowsGlow

        return NormflowsGlow(config)
    return BPLF(config)
