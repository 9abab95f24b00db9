"""Radial Fourier bands as a real orthonormal transform.

The orthonormal 2D DFT of a real image is Hermitian: X(-f) = conj X(f). A real orthonormal
coefficient vector keeps each self-conjugate frequency (DC, Nyquist) once as its real value and,
for every other conjugate pair, sqrt(2) Re and sqrt(2) Im of one representative. The filter
never needs that vector: a radial weight is real and symmetric, so P(w) x = irfft2(w * rfft2(x)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Transform, check_num_bands

SQRT2 = 2.0**0.5


def radial_frequency(h: int, w: int) -> np.ndarray:
    """|f| in integer units (cycles per image) on the full (h, w) FFT grid."""
    fy = np.fft.fftfreq(h) * h
    fx = np.fft.fftfreq(w) * w
    return np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


class FourierTransform(Transform):
    """Per-channel radial frequency bands of images of shape (C, H, W).

    Bands are radius intervals: `edges` (increasing radii; band b holds edges[b-1] <= |f| < edges[b])
    or `num_bands` groups with `split="dyadic"` (edges at r_max/2, r_max/4, ... with
    r_max = min(H, W)/2, like wavelet levels) or `split="count"` (about equal coefficient counts).
    """

    name = "fourier"

    def __init__(
        self,
        shape: Sequence[int],
        num_bands: int | None = None,
        edges: Sequence[float] | None = None,
        split: str = "dyadic",
    ):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"FourierTransform needs shape=(C, H, W) of positive sizes, got {shape}")
        self.shape = shape
        C, H, W = shape
        r = radial_frequency(H, W)
        if edges is not None and num_bands is not None:
            raise ValueError("FourierTransform: give either num_bands or edges, not both")
        if edges is None:
            num_bands = 2 if num_bands is None else num_bands
            limit = len(np.unique(np.round(r, 9)))
            if split == "dyadic":  # dyadic edges halve r_max each band; past that bands would be empty
                limit = min(limit, int(np.log2(min(H, W) / 2)) + 1)
            check_num_bands(num_bands, limit, f"FourierTransform on {H}x{W} with split={split!r}")
            edges = self._default_edges(r, num_bands, split)
        edges = [float(e) for e in edges]
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"FourierTransform: edges {edges} must be strictly increasing radii")
        band_full = np.searchsorted(np.asarray(edges), r, side="right")  # (H, W)
        present = np.unique(band_full)
        if len(present) != len(edges) + 1:
            raise ValueError(
                f"FourierTransform: edges {[round(e, 3) for e in edges]} leave an empty band for a {H}x{W} image "
                f"(radii go from 0 to {r.max():.2f}); use fewer bands or other edges"
            )
        self.edges = edges
        self.split = split

        # Real coefficient layout on the rfft grid (H, W//2+1): pick one representative per
        # conjugate pair; self-conjugate frequencies give one real coefficient.
        Wr = W // 2 + 1
        ky, kx = np.meshgrid(np.arange(H), np.arange(Wr), indexing="ij")
        cy, cx = (-ky) % H, (-kx) % W
        self_conj = (cy == ky) & (cx == kx)
        # representative: conjugate partner not stored (cx >= Wr), or stored and lexicographically larger
        partner_stored = cx < Wr
        rep = ~self_conj & (~partner_stored | (cy * W + cx > ky * W + kx))
        real_idx = np.flatnonzero(self_conj.ravel())
        pair_idx = np.flatnonzero(rep.ravel())
        assert len(real_idx) + 2 * len(pair_idx) == H * W
        self._real_idx = torch.from_numpy(real_idx)
        self._pair_idx = torch.from_numpy(pair_idx)
        # conjugate rows to fill on synthesis: stored partners of the representatives
        mirror = rep & partner_stored
        self._mirror_src = torch.from_numpy(np.flatnonzero(mirror.ravel()))
        self._mirror_dst = torch.from_numpy((cy * Wr + cx)[mirror].ravel())

        band_r = band_full[:, :Wr]
        self._band_grid = torch.from_numpy(band_r.copy()).long()  # (H, Wr)
        per_channel = np.concatenate([band_r.ravel()[real_idx], band_r.ravel()[pair_idx], band_r.ravel()[pair_idx]])
        order = np.argsort(per_channel, kind="stable")  # coefficients sorted by band, then layout
        self._order = torch.from_numpy(order)
        self._inv_order = torch.from_numpy(np.argsort(order))
        bands = per_channel[order]
        self.bands = torch.from_numpy(np.tile(bands, C)).long()

    @staticmethod
    def _default_edges(r: np.ndarray, num_bands: int, split: str) -> list[float]:
        if split == "dyadic":
            rmax = min(r.shape) / 2
            return [rmax / 2 ** (num_bands - 1 - b) for b in range(num_bands - 1)]
        if split == "count":
            radii = np.sort(r.ravel())
            qs = [radii[int(len(radii) * (b + 1) / num_bands)] for b in range(num_bands - 1)]
            return [float(q) for q in qs]
        raise ValueError(f"FourierTransform: split={split!r} is unknown; use 'dyadic' or 'count'")

    def _dev(self, name: str, device) -> Tensor:
        t = getattr(self, name)
        if t.device != device:
            t = t.to(device)
            setattr(self, name, t)
        return t

    def analyze(self, x: Tensor) -> Tensor:
        self.check_input(x)
        N, C, H, W = x.shape
        X = torch.fft.rfft2(x, norm="ortho").reshape(N, C, -1)
        real = X[..., self._dev("_real_idx", x.device)].real
        pair = X[..., self._dev("_pair_idx", x.device)]
        c = torch.cat([real, SQRT2 * pair.real, SQRT2 * pair.imag], dim=-1)
        return c[..., self._dev("_order", x.device)].reshape(N, -1)

    def synthesize(self, c: Tensor) -> Tensor:
        C, H, W = self.shape
        N = c.shape[0]
        c = c.reshape(N, C, -1)[..., self._dev("_inv_order", c.device)]
        nr, npair = len(self._real_idx), len(self._pair_idx)
        real, re, im = c[..., :nr], c[..., nr : nr + npair], c[..., nr + npair :]
        Wr = W // 2 + 1
        X = torch.zeros(
            N, C, H * Wr, dtype=torch.complex128 if c.dtype == torch.float64 else torch.complex64, device=c.device
        )
        X[..., self._dev("_real_idx", c.device)] = real.to(X.dtype)
        X[..., self._dev("_pair_idx", c.device)] = torch.complex(re, im) / SQRT2
        X[..., self._dev("_mirror_dst", c.device)] = X[..., self._dev("_mirror_src", c.device)].conj()
        return torch.fft.irfft2(X.reshape(N, C, H, Wr), s=(H, W), norm="ortho")

    # the filter works on the rfft grid directly
    def _to_native(self, x: Tensor) -> Tensor:
        return torch.fft.rfft2(x, norm="ortho")

    def _from_native(self, X: Tensor) -> Tensor:
        return torch.fft.irfft2(X, s=self.shape[-2:], norm="ortho")

    def _scale_native(self, X: Tensor, band_weights: Tensor) -> Tensor:
        grid = self._dev("_band_grid", X.device)
        if band_weights.dim() == 1:
            return X * band_weights[grid]
        return X * band_weights[:, grid].unsqueeze(1)  # (N, 1, H, Wr) broadcast over channels
