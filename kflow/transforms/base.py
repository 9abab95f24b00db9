"""The K-amplitude decomposition interface.

A transform is an orthonormal linear map F from a sample (shape `shape`, e.g. (C, H, W)) onto
R^D, D = prod(shape), with a band label per coefficient (band 0 = coarsest). Everything the
K-Flow path needs is the filter P(w) = F^T diag(w) F with per-band weights w, so subclasses
may override the "native" domain used by `filter` (rfft grid for Fourier) to avoid the flat
coefficient vector on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..utils.errors import BandCountError

SPLITS = ("dyadic", "count")


class Transform:
    shape: tuple[int, ...]
    bands: Tensor  # (D,) long, band label per coefficient of analyze()

    # ---- to be provided by subclasses -------------------------------------------------------
    def analyze(self, x: Tensor) -> Tensor:
        """(N, *shape) -> (N, D) orthonormal coefficients."""
        raise NotImplementedError

    def synthesize(self, c: Tensor) -> Tensor:
        """(N, D) -> (N, *shape); the inverse (and transpose) of analyze."""
        raise NotImplementedError

    # ---- native domain: defaults to the flat coefficients -----------------------------------
    def _to_native(self, x: Tensor):
        return self.analyze(x)

    def _from_native(self, c) -> Tensor:
        return self.synthesize(c)

    def _scale_native(self, c, band_weights: Tensor):
        # band_weights: (N, B) or (B,) -> gather a weight per coefficient
        return c * band_weights[..., self._bands_on(c.device)]

    # ---- shared API -------------------------------------------------------------------------
    @property
    def num_bands(self) -> int:
        return int(self.bands.max()) + 1

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def _bands_on(self, device) -> Tensor:
        if self.bands.device != device:
            self.bands = self.bands.to(device)
        return self.bands

    def _basis_like(self, like: Tensor) -> Tensor:
        """self.basis (dense-basis transforms: PCA, graph) in like's dtype and device, cached."""
        cache = self.__dict__.setdefault("_cache", {})
        key = (like.dtype, like.device)
        if key not in cache:
            cache[key] = self.basis.to(device=like.device, dtype=like.dtype)
        return cache[key]

    def check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != tuple(self.shape):
            raise ValueError(
                f"{type(self).__name__} was built for samples of shape {tuple(self.shape)} but got "
                f"a batch of shape {tuple(x.shape)}; build the transform with shape={tuple(x.shape[1:])}"
            )

    def filter(self, x: Tensor, weights: Tensor) -> Tensor:
        """Apply F^T diag(w) F to a batch x of shape (N, *shape).

        weights: (B,) or (N, B) per band, or (D,) / (N, D) per coefficient (then D != B).
        """
        self.check_input(x)
        return self.filter_many(x, [weights])[0]

    def filter_many(self, x: Tensor, weights: Sequence[Tensor]) -> list[Tensor]:
        """Several filters of one x sharing one forward transform (the path needs two)."""
        self.check_input(x)
        B, D = self.num_bands, self.dim
        # a weight vector of length B is per band (when B == D the two readings coincide only if
        # bands are labelled in coefficient order, as for PCA with one component per band)
        per_band = [w.shape[-1] == B for w in weights]
        for w in weights:
            if w.shape[-1] not in (B, D) or w.dim() > 2 or (w.dim() == 2 and w.shape[0] != x.shape[0]):
                raise ValueError(
                    f"filter weights of shape {tuple(w.shape)} do not fit: give (B,) or (N, B) per band "
                    f"(B={B}) or (D,) or (N, D) per coefficient (D={D}), N={x.shape[0]}"
                )
        if all(per_band):
            native = self._to_native(x)
            return [self._from_native(self._scale_native(native, w.to(x.dtype))) for w in weights]
        c = self.analyze(x)
        out = []
        for w, pb in zip(weights, per_band):
            w = w.to(x.dtype)
            out.append(self.synthesize(c * (w[..., self._bands_on(x.device)] if pb else w)))
        return out

    def band_sizes(self) -> Tensor:
        return torch.bincount(self.bands.cpu(), minlength=self.num_bands)

    @torch.no_grad()
    def band_energy(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Mean squared coefficient mass per band over a dataset x (N, *shape): (B,) float64.

        The sum over bands equals the mean squared norm of the samples (F is orthonormal).
        """
        total = torch.zeros(self.num_bands, dtype=torch.float64)
        for i in range(0, x.shape[0], batch_size):
            c = self.analyze(x[i : i + batch_size]).double().cpu()
            total.index_add_(0, self.bands.cpu(), (c**2).sum(0))
        return total / x.shape[0]

    @torch.no_grad()
    def band_variance(self, x: Tensor, batch_size: int = 1024) -> Tensor:
        """Total variance per band (energy about the mean): (B,) float64."""
        mean = x.double().mean(0, keepdim=True).to(x.dtype)
        return self.band_energy(x - mean, batch_size)

    # ---- stages: the started bands 0..s as a smaller sample (band-localized compute) ---------
    # to_stage maps a sample to an orthonormal image of its bands 0..s; from_stage maps such an image
    # back, zero on bands s + 1..: from_stage(to_stage(x)) keeps bands 0..s of x, to_stage(from_stage(z))
    # is z (Fourier: z's started part; its crop also holds a few later frequencies). Transforms whose
    # bands span no smaller image (PCA, graph) refuse.
    def stage_shape(self, s: int) -> tuple[int, ...]:
        raise ValueError(
            f"{self.describe()}: bands 0..{s} span no lower-resolution image, so model.resolution=stage "
            "cannot run on them; use wavelet or Fourier bands, or model.resolution=full"
        )

    def to_stage(self, x: Tensor, s: int) -> Tensor:
        """(N, *shape) -> (N, *stage_shape(s))."""
        self.stage_shape(s)  # refuses here
        raise NotImplementedError

    def from_stage(self, z: Tensor, s: int) -> Tensor:
        """(N, *stage_shape(s)) -> (N, *shape), zero on the bands after s."""
        self.stage_shape(s)  # refuses here
        raise NotImplementedError

    def check_stage(self, s: int) -> int:
        if not 0 <= s < self.num_bands:
            raise ValueError(f"stage {s} does not exist: this transform has bands 0..{self.num_bands - 1}")
        return s

    def describe(self) -> str:
        """A short name for reports: 'fourier, 2 bands' (wavelets add theirs: 'wavelet db6, 3 bands')."""
        detail = getattr(self, "wavelet", None)
        return f"{self.name}{' ' + detail if detail else ''}, {self.num_bands} bands"


def group_boundaries(sizes: Sequence[int], num_bands: int, what: str) -> list[int]:
    """Merge consecutive scale groups (coarse -> fine) into `num_bands` bands.

    The finest groups stay separate bands and the coarse ones merge into band 0, so band 0 is
    a coarse image of its own (for wavelets exactly the 2^-l downsampled approximation).
    Returns the band label of each group.
    """
    n = len(sizes)
    if num_bands < 1 or num_bands > n:
        raise ValueError(f"{what}: num_bands={num_bands} is out of range; choose 1..{n}")
    merged = n - num_bands + 1
    return [0] * merged + list(range(1, num_bands))


def dyadic_sizes(dim: int, num_bands: int) -> list[int]:
    """Band sizes D/4^(B-1), ... that mirror the coefficient counts of dyadic wavelet levels."""
    bounds = [dim // 4 ** (num_bands - 1 - b) for b in range(num_bands)]
    bounds = [max(b, i + 1) for i, b in enumerate(bounds)]
    return [bounds[0]] + [bounds[i] - bounds[i - 1] for i in range(1, num_bands)]


def check_num_bands(num_bands, limit: int, what: str) -> int:
    if not isinstance(num_bands, int) or isinstance(num_bands, bool) or not 1 <= num_bands <= limit:
        raise BandCountError(f"{what}: num_bands={num_bands!r} is not possible; choose an integer in 1..{limit}", limit)
    return num_bands


def split_sizes(n: int, num_bands: int, split: str, what: str) -> list[int]:
    """Sizes of `num_bands` groups of n ordered components: dyadic (like wavelet levels, the last
    group holding 3/4 of them) or equal counts."""
    check_num_bands(num_bands, n, what)
    if split == "dyadic":
        return dyadic_sizes(n, num_bands)
    if split == "count":
        return [n // num_bands + (b < n % num_bands) for b in range(num_bands)]
    raise ValueError(f"{what}: split={split!r} is unknown; use one of {SPLITS}")


def fix_signs(U: Tensor) -> Tensor:
    """Eigenvectors (columns of U, (..., D, D)) with a deterministic sign: the largest-magnitude
    entry of each is positive."""
    idx = U.abs().argmax(-2, keepdim=True)
    return U * torch.sign(torch.gather(U, -2, idx))
