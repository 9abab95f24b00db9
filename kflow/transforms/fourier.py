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

    # ---- stages: bands 0..s are the radii |f| < edges[s]; a centred crop of the spectrum holds them.
    # The stage image is (H / 2^j, W / 2^j) for the largest j whose grid still holds every started
    # frequency strictly inside its Nyquist limit, so the crop keeps conjugate pairs together and the
    # image is real. The crop also holds a few frequencies of later bands (its corners): the noise
    # there is passed along untouched and from_stage projects back onto the started bands.
    def _stage_grid(self, s: int) -> tuple[int, int]:
        # called on every staged forward: computed once per stage
        key = ("_grid", self.check_stage(s))
        if key not in self.__dict__:
            self.__dict__[key] = self._find_stage_grid(s)
        return self.__dict__[key]

    def _find_stage_grid(self, s: int) -> tuple[int, int]:
        C, H, W = self.shape
        if s == len(self.edges):
            return H, W
        r = radial_frequency(H, W)
        fy, fx = np.meshgrid(np.fft.fftfreq(H) * H, np.fft.fftfreq(W) * W, indexing="ij")
        started = r < self.edges[s]
        need_y, need_x = np.abs(fy[started]).max(), np.abs(fx[started]).max()
        j = 0
        while H % 2 ** (j + 1) == 0 and W % 2 ** (j + 1) == 0:
            h, w = H >> (j + 1), W >> (j + 1)
            if need_y >= h / 2 or need_x >= w / 2:
                break
            j += 1
        return H >> j, W >> j

    def stage_shape(self, s: int) -> tuple[int, ...]:
        return (self.shape[0], *self._stage_grid(s))

    def _crop_index(self, s: int, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Rows and columns of the full spectrum a stage keeps, and where they sit in the stage's."""
        key = ("_crop", s, str(device))
        if key not in self.__dict__:
            (H, W), (h, w) = self.shape[1:], self._stage_grid(s)
            out = []
            for big, small in ((H, h), (W, w)):
                f = np.round(np.fft.fftfreq(small) * small).astype(np.int64)
                inside = np.abs(f) < small / 2  # the small grid's Nyquist row holds nothing
                out += [
                    torch.from_numpy(f[inside] % big).to(device),
                    torch.from_numpy(np.flatnonzero(inside)).to(device),
                ]
            self.__dict__[key] = tuple(out)
        return self.__dict__[key]

    def to_stage(self, x: Tensor, s: int) -> Tensor:
        self.check_input(x)
        (h, w), (H, W) = self._stage_grid(s), self.shape[1:]
        if (h, w) == (H, W):
            return x
        by, sy, bx, sx = self._crop_index(s, x.device)
        X = torch.fft.fft2(x, norm="ortho")
        Z = torch.zeros(*x.shape[:2], h, w, dtype=X.dtype, device=x.device)
        Z[..., sy[:, None], sx[None, :]] = X[..., by[:, None], bx[None, :]]
        return torch.fft.ifft2(Z, norm="ortho").real  # orthonormal: the same coefficients on a smaller grid

    def from_stage(self, z: Tensor, s: int) -> Tensor:
        if tuple(z.shape[1:]) != self.stage_shape(s):
            raise ValueError(f"stage {s} images have shape {self.stage_shape(s)}; got {tuple(z.shape[1:])}")
        C, H, W = self.shape
        if tuple(z.shape[2:]) == (H, W):
            return self.filter(z, (torch.arange(self.num_bands) <= s).to(z.dtype))
        by, sy, bx, sx = self._crop_index(s, z.device)
        Z = torch.fft.fft2(z, norm="ortho")
        X = torch.zeros(*z.shape[:2], H, W, dtype=Z.dtype, device=z.device)
        X[..., by[:, None], bx[None, :]] = Z[..., sy[:, None], sx[None, :]]
        x = torch.fft.ifft2(X, norm="ortho").real
        return self.filter(x, (torch.arange(self.num_bands, device=z.device) <= s).to(z.dtype))
