"""Orthonormal multi-level 2D DWT with periodization, on the tensor's device, with autograd.

One analysis level on a length-n axis is an orthogonal n x n matrix M = [H; G] (lowpass rows
then highpass rows, circular convolution with stride 2), built once from the wavelet's filters.
A level applies M along both axes of the current approximation block: Y = M_h X M_w^T. The
matrices are per axis and per level (at most 32 x 32 for a 32 x 32 image), never D x D.
Coefficients match pywt.wavedec2(x, wavelet, mode="periodization", level=L), flattened in its
list order: [cA_L, (cH_L, cV_L, cD_L), ..., (cH_1, cV_1, cD_1)].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Transform, check_num_bands, group_boundaries


def periodized_level_matrix(dec_lo: Sequence[float], dec_hi: Sequence[float], n: int) -> np.ndarray:
    """(n, n) orthogonal analysis matrix of one periodized DWT level (float64).

    Row i < n/2: a[i] = sum_k lo[k] x[(2i + L/2 - k) mod n]; rows n/2.. likewise with hi
    (the offset L/2 is PyWavelets' periodization convention).
    """
    L = len(dec_lo)
    M = np.zeros((n, n))
    for i in range(n // 2):
        for k in range(L):
            j = (2 * i + L // 2 - k) % n
            M[i, j] += dec_lo[k]
            M[n // 2 + i, j] += dec_hi[k]
    return M


def _wavelet_filters(name: str):
    try:
        import pywt
    except ImportError as e:  # pragma: no cover - core dependency
        raise ImportError("WaveletTransform needs PyWavelets: pip install PyWavelets") from e
    if name not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"unknown wavelet {name!r}; use an orthogonal discrete wavelet PyWavelets knows, e.g. "
            "haar, db2..db10, sym4, coif2"
        )
    w = pywt.Wavelet(name)
    if not w.orthogonal:
        raise ValueError(
            f"wavelet {name!r} is not orthogonal (biorthogonal wavelets are not orthonormal); "
            "use haar, dbN, symN or coifN"
        )
    return w.dec_lo, w.dec_hi


class WaveletTransform(Transform):
    """Bands are DWT levels: band 0 the coarsest approximation (with the coarsest detail levels
    merged into it when num_bands < levels + 1), the last band the finest details.

    Default `levels`: down to a 4 x 4 approximation (3 levels for 32 x 32).
    """

    name = "wavelet"

    def __init__(
        self, shape: Sequence[int], wavelet: str = "db6", levels: int | None = None, num_bands: int | None = None
    ):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"WaveletTransform needs shape=(C, H, W) of positive sizes, got {shape}")
        C, H, W = shape
        if levels is None:
            levels = max(1, int(np.log2(min(H, W))) - 2)
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"WaveletTransform: levels={levels!r} must be a positive integer")
        if H % 2**levels or W % 2**levels:
            raise ValueError(
                f"WaveletTransform: a {H}x{W} image cannot take {levels} levels (H and W must be divisible "
                f"by 2^{levels}={2**levels}); pad the images or use fewer levels"
            )
        lo, hi = _wavelet_filters(wavelet)
        self.shape, self.wavelet, self.levels = shape, wavelet, levels
        self._mats = [
            (
                torch.from_numpy(periodized_level_matrix(lo, hi, H >> l)),
                torch.from_numpy(periodized_level_matrix(lo, hi, W >> l)),
            )
            for l in range(levels)
        ]
        self._cache: dict = {}

        # scale groups coarse -> fine: approximation, then detail levels L..1
        h, w = H >> levels, W >> levels
        sizes = [h * w] + [3 * (H >> l) * (W >> l) // 4 for l in range(levels - 1, -1, -1)]
        num_bands = levels + 1 if num_bands is None else num_bands
        check_num_bands(num_bands, levels + 1, f"WaveletTransform with {levels} levels")
        labels = group_boundaries(sizes, num_bands, "WaveletTransform")
        per_channel = torch.cat([torch.full((s,), b) for s, b in zip(sizes, labels)])
        self._group_sizes = sizes
        self.bands = per_channel.repeat(C).long()

    def _mat(self, level: int, axis: int, like: Tensor) -> Tensor:
        key = (level, axis, like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = self._mats[level][axis].to(device=like.device, dtype=like.dtype)
        return self._cache[key]

    def analyze(self, x: Tensor) -> Tensor:
        self.check_input(x)
        N, C = x.shape[:2]
        a, details = x, []
        for l in range(self.levels):
            Mh, Mw = self._mat(l, 0, x), self._mat(l, 1, x)
            y = Mh @ a @ Mw.T  # (N, C, h, w)
            h2, w2 = y.shape[-2] // 2, y.shape[-1] // 2
            # cH: highpass along rows (axis -2); cV: highpass along columns; cD: both
            details.append(
                torch.cat(
                    [
                        y[..., h2:, :w2].reshape(N, C, -1),
                        y[..., :h2, w2:].reshape(N, C, -1),
                        y[..., h2:, w2:].reshape(N, C, -1),
                    ],
                    dim=-1,
                )
            )
            a = y[..., :h2, :w2]
        parts = [a.reshape(N, C, -1)] + details[::-1]
        return torch.cat(parts, dim=-1).reshape(N, -1)

    def synthesize(self, c: Tensor) -> Tensor:
        C, H, W = self.shape
        N = c.shape[0]
        c = c.reshape(N, C, -1)
        h, w = H >> self.levels, W >> self.levels
        a = c[..., : h * w].reshape(N, C, h, w)
        pos = h * w
        for l in range(self.levels - 1, -1, -1):
            hl, wl = H >> (l + 1), W >> (l + 1)
            n = hl * wl
            cH = c[..., pos : pos + n].reshape(N, C, hl, wl)
            cV = c[..., pos + n : pos + 2 * n].reshape(N, C, hl, wl)
            cD = c[..., pos + 2 * n : pos + 3 * n].reshape(N, C, hl, wl)
            pos += 3 * n
            y = torch.cat([torch.cat([a, cV], -1), torch.cat([cH, cD], -1)], -2)
            Mh, Mw = self._mat(l, 0, c), self._mat(l, 1, c)
            a = Mh.T @ y @ Mw
        return a

    # ---- stages: bands 0..s are the approximation after j = B - 1 - s levels, an (H / 2^j)-square image.
    # Only the lowpass halves of the level matrices are used: the details of levels 1..j are bands > s.
    def _stage_levels(self, s: int) -> int:
        return self.num_bands - 1 - self.check_stage(s)

    def stage_shape(self, s: int) -> tuple[int, ...]:
        C, H, W = self.shape
        j = self._stage_levels(s)
        return (C, H >> j, W >> j)

    def to_stage(self, x: Tensor, s: int) -> Tensor:
        self.check_input(x)
        a = x
        for l in range(self._stage_levels(s)):
            Mh, Mw = self._mat(l, 0, x), self._mat(l, 1, x)
            a = Mh[: Mh.shape[0] // 2] @ a @ Mw[: Mw.shape[0] // 2].T  # the lowpass block of one level
        return a

    def from_stage(self, z: Tensor, s: int) -> Tensor:
        j = self._stage_levels(s)
        if tuple(z.shape[1:]) != self.stage_shape(s):
            raise ValueError(f"stage {s} images have shape {self.stage_shape(s)}; got {tuple(z.shape[1:])}")
        a = z
        for l in range(j - 1, -1, -1):
            Mh, Mw = self._mat(l, 0, z), self._mat(l, 1, z)
            a = Mh[: Mh.shape[0] // 2].T @ a @ Mw[: Mw.shape[0] // 2]
        return a
