"""PCA whitening as an invertible flow layer, fitted from data, with an exact log-determinant."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from bplf.flows.base import FlowModule, per_sample

SCOPES = ("global", "zca", "patch")


class PCALayer(FlowModule):
    """Mean removal and whitening by principal components, ``y = W (x - mu)``.

    Scopes:

    - ``"global"``: on the flattened image (D = C*H*W), ``W = diag(lambda)^-1/2 U^T``; the output
      is reshaped to (N, C, H, W) in PCA-coefficient layout (component k at flat index k, in
      decreasing order of variance), so it has no spatial locality left.
    - ``"zca"``: ``W = U diag(lambda)^-1/2 U^T``, the same whitening rotated back to pixel space,
      so neighbouring outputs stay neighbouring pixels.
    - ``"patch"``: a 1x1 map on channel vectors (after a squeeze: 2x2 patches), fitted on the
      channel vectors of all positions, ``W = diag(lambda)^-1/2 U^T``; log|det| = H*W*log|det W|.

    Eigenvalues below ``eps * lambda_max`` (constant border pixels, collinear inputs) are raised
    to that floor instead of dividing by ~0; with fewer samples than dimensions (N <= D) the
    floor is at least the median of the N - 1 estimated eigenvalues, so unseen images are not
    blown up along unobserved directions. A warning says how many directions were regularised
    (``num_regularized``), and also when N < 4 D (a biased spectrum: fit on more images).

    Fixed (default): U and log(lambda) are buffers; log|det| = -1/2 sum(log lambda) (U is
    orthogonal) and the inverse ``x = U diag(lambda)^1/2 (...) + mu`` is exact without solving
    anything. ``trainable=True``: after fitting, W and mu are parameters; log|det| comes from
    ``slogdet(W)`` and the inverse solves with W in float64. The ``fitted`` buffer travels with
    the state dict; using the layer before :meth:`fit` raises a RuntimeError.
    """

    def __init__(self, channels: int, image_size: int | tuple[int, int] | None = None,
                 scope: str = "zca", trainable: bool = False, eps: float = 1e-6):
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"PCA scope must be one of {SCOPES}, not {scope!r}")
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        if scope != "patch" and image_size is None:
            raise ValueError(f"PCA scope {scope!r} needs image_size")
        self.scope, self.trainable, self.eps = scope, trainable, eps
        self.channels = channels
        self.image_size = None if image_size is None else tuple(image_size)
        self.dim = channels if scope == "patch" else channels * image_size[0] * image_size[1]
        self.register_buffer("fitted", torch.tensor(False))
        self._known_fitted = False  # caches the buffer: no device sync on every forward
        #: how many eigen-directions the last fit regularised (0 when the data were full rank)
        self.num_regularized = 0
        d = self.dim
        if trainable:
            self.mean = nn.Parameter(torch.zeros(d))
            self.weight = nn.Parameter(torch.eye(d))
        else:
            self.register_buffer("mean", torch.zeros(d))
            self.register_buffer("eigvecs", torch.eye(d))
            self.register_buffer("log_eigvals", torch.zeros(d))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scope={self.scope!r}, trainable={self.trainable}"

    # -- layout -------------------------------------------------------------------------------
    def _flatten(self, x: Tensor) -> Tensor:
        if self.scope == "patch":
            if x.shape[1] != self.channels:
                raise ValueError(f"patch PCA expects {self.channels} channels, got {x.shape[1]}")
            return x.permute(0, 2, 3, 1).reshape(-1, self.channels)
        expected = (self.channels, *self.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{self.scope} PCA expects inputs of shape (N, {expected}), "
                             f"got {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)

    def _unflatten(self, v: Tensor, like: Tensor) -> Tensor:
        if self.scope == "patch":
            n, _, h, w = like.shape
            return v.reshape(n, h, w, self.channels).permute(0, 3, 1, 2)
        return v.reshape(like.shape)

    def _positions(self, x: Tensor) -> int:
        return x.shape[2] * x.shape[3] if self.scope == "patch" else 1

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._known_fitted = False

    def _check_fitted(self) -> None:
        if self._known_fitted:
            return
        self._known_fitted = bool(self.fitted)
        if not self._known_fitted:
            raise RuntimeError(f"PCALayer(scope={self.scope!r}) is not fitted: call "
                               "model.initialize(x) (or layer.fit(x)) on training images first")

    # -- fitting ------------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, x: Tensor) -> PCALayer:
        """Fit mean and whitening to ``x`` (N, C, H, W); eigen-decomposition in float64."""
        v = self._flatten(x).double()
        n = v.shape[0]
        mean = v.mean(0)
        vc = v - mean
        lam, u = torch.linalg.eigh(vc.T @ vc / n)
        lam, u = lam.flip(0), u.flip(1)  # decreasing variance
        top = float(lam[0])
        floor = self.eps * top if top > 0 else 1.0
        rank = min(n - 1, self.dim)
        if 0 < rank < self.dim:
            # n samples span at most n - 1 directions, and the lower part of a rank-deficient
            # sample spectrum is biased low (Marchenko-Pastur): floor at the median estimated
            # eigenvalue, so that unseen images are not blown up along unobserved directions.
            floor = max(floor, float(lam[rank // 2]))
        self.num_regularized = int((lam < floor).sum())
        problems = []
        if self.num_regularized:
            problems.append(f"{self.num_regularized} of {self.dim} directions had variance below "
                            f"{floor:.3g} and were regularised (eigenvalue raised to that floor) "
                            "instead of dividing by ~0")
        if n < 4 * self.dim:
            problems.append(f"only {n} samples for {self.dim} dimensions: the small eigenvalues "
                            "are underestimated, which inflates held-out images' coefficients")
        if problems:
            warnings.warn(f"PCALayer({self.scope}): " + "; ".join(problems) + ". Fit on more, "
                          f"varied data (at least 4 * D = {4 * self.dim} samples).", stacklevel=3)
        log_lam = lam.clamp_min(floor).log()
        self.mean.copy_(mean)
        if self.trainable:
            w = u.T * torch.exp(-0.5 * log_lam)[:, None]
            if self.scope == "zca":
                w = u @ w
            self.weight.copy_(w)
        else:
            self.eigvecs.copy_(u)
            self.log_eigvals.copy_(log_lam)
        self.fitted.fill_(True)
        return self

    def matrix(self) -> Tensor:
        """The (D, D) whitening matrix W (for inspection)."""
        if self.trainable:
            return self.weight
        w = self.eigvecs.T * torch.exp(-0.5 * self.log_eigvals)[:, None]
        return self.eigvecs @ w if self.scope == "zca" else w

    # -- the map ------------------------------------------------------------------------------
    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_fitted()
        v = self._flatten(x) - self.mean
        if self.trainable:
            v = v @ self.weight.T
            logdet = torch.linalg.slogdet(self.weight)[1]
        else:
            v = (v @ self.eigvecs) * torch.exp(-0.5 * self.log_eigvals)
            if self.scope == "zca":
                v = v @ self.eigvecs.T
            logdet = -0.5 * self.log_eigvals.sum()
        return self._unflatten(v, x), per_sample(self._positions(x) * logdet, x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        self._check_fitted()
        v = self._flatten(y)
        if self.trainable:
            v = torch.linalg.solve(self.weight.double(), v.double().T).T.to(y.dtype)
        else:
            if self.scope == "zca":
                v = v @ self.eigvecs
            v = (v * torch.exp(0.5 * self.log_eigvals)) @ self.eigvecs.T
        return self._unflatten(v + self.mean, y)
