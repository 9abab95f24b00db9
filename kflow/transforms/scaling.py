"""Per-band normalisation of the data: each band's coefficients divided by their RMS on the
training data, so that every band's part of the problem has unit scale, like the noise it is
mixed with (wavelet score-based models, Guth et al. 2022, normalise every scale this way). The
model learns the normalised data; samples are mapped back with `denormalize`."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Transform

BAND_SCALES = ("none", "rms")


class BandScale:
    """x -> F^T diag(1 / rms_b) F x and back; rms (B,) float64, one positive number per band."""

    def __init__(self, transform: Transform, rms):
        rms = torch.as_tensor(rms, dtype=torch.float64).flatten()
        if len(rms) != transform.num_bands:
            raise ValueError(f"band_scale has {len(rms)} entries for {transform.num_bands} bands")
        if not torch.isfinite(rms).all() or (rms <= 0).any():
            raise ValueError(f"band_scale {rms.tolist()} must be positive numbers (per-band RMS)")
        self.transform, self.rms = transform, rms

    @classmethod
    def fit(cls, transform: Transform, x: Tensor) -> BandScale:
        """The RMS of each band's coefficients over a dataset x (N, *shape)."""
        count = torch.bincount(transform.bands.cpu(), minlength=transform.num_bands).double()
        return cls(transform, (transform.band_energy(x) / count).sqrt())

    def _apply(self, x: Tensor, gain: Tensor, batch_size: int) -> Tensor:
        g = gain.to(device=x.device, dtype=x.dtype)
        return torch.cat([self.transform.filter(x[i : i + batch_size], g) for i in range(0, len(x), batch_size)])

    def normalize(self, x: Tensor, batch_size: int = 4096) -> Tensor:
        return self._apply(x, 1 / self.rms, batch_size)

    def denormalize(self, x: Tensor, batch_size: int = 4096) -> Tensor:
        return self._apply(x, self.rms, batch_size)
