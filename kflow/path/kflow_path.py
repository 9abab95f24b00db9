"""The K-Flow path (NOTES.md, paper Eq. 9-11 corrected).

Band position p (= band for low_to_high, B-1-band for high_to_low) is active on
[kappa_p, kappa_{p+1}). With t = (k - kappa_p) / (kappa_{p+1} - kappa_p) the per-band amplitude is
a = 1 for earlier positions, mu(t) for the active one, 0 for later ones, and

    x_k  = x_0 + P(a) (x_1 - x_0)        P(a) = F^T diag(a) F
    dx_k = P(a') (x_1 - x_0)             a' = mu'(t) / (kappa_{p+1} - kappa_p) on the active band

One band with the identity transform is rectified flow: x_k = k x_1 + (1 - k) x_0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..transforms.base import Transform
from .bumps import get_bump

ORDERS = ("low_to_high", "high_to_low")
ALLOCATIONS = ("uniform", "energy")


@dataclass
class PathSample:
    x_k: Tensor  # (N, *shape) point on the path
    dx_k: Tensor  # (N, *shape) velocity d x_k / d k, the regression target
    k: Tensor  # (N,)
    band: Tensor  # (N,) long, the band being generated at k


class KFlowPath:
    def __init__(self, transform: Transform, bump: str = "linear", allocation: str | Sequence[float] = "uniform",
                 order: str = "low_to_high", energy: Sequence[float] | Tensor | None = None):
        self.transform = transform
        self.bump_name = bump
        self.bump = get_bump(bump)
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
        self.order = order
        B = transform.num_bands
        # position p -> band
        self.band_of_position = torch.arange(B) if order == "low_to_high" else torch.arange(B - 1, -1, -1)
        self.position_of_band = torch.argsort(self.band_of_position)
        weights = self._allocation_weights(allocation, B, energy)  # per band
        # what rebuilds this path: 'uniform', or the explicit per-band weights ('energy' resolved)
        self.allocation = "uniform" if allocation == "uniform" else weights.tolist()
        w_pos = weights[self.band_of_position]
        self.kappa = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(w_pos / w_pos.sum(), 0)])
        self.kappa[-1] = 1.0  # (B+1,) float64, position boundaries

    @staticmethod
    def _allocation_weights(allocation, B: int, energy) -> Tensor:
        if isinstance(allocation, str):
            if allocation == "uniform":
                return torch.ones(B, dtype=torch.float64)
            if allocation == "energy":
                if energy is None:
                    raise ValueError("allocation='energy' needs energy= per-band energies measured from data "
                                     "(transform.band_energy(x))")
                w = torch.as_tensor(energy, dtype=torch.float64).flatten()
                if len(w) != B:
                    raise ValueError(f"energy has {len(w)} entries but the transform has {B} bands")
                allocation = w
            else:
                raise ValueError(f"unknown allocation {allocation!r}; use 'uniform', 'energy' or a list of {B} weights")
        w = torch.as_tensor(allocation, dtype=torch.float64).flatten()
        if len(w) != B or not torch.isfinite(w).all() or (w <= 0).any():
            raise ValueError(f"allocation weights {w.tolist()} must be {B} positive finite numbers (one per band)")
        return w

    @property
    def num_bands(self) -> int:
        return self.transform.num_bands

    def band_intervals(self) -> Tensor:
        """(B, 2) float64: the k-interval [start, end) of each band, indexed by band."""
        pos = self.position_of_band
        return torch.stack([self.kappa[pos], self.kappa[pos + 1]], dim=1)

    def active_position(self, k: Tensor) -> Tensor:
        kappa = self.kappa.to(device=k.device, dtype=k.dtype)
        p = torch.searchsorted(kappa[1:-1].contiguous(), k.contiguous(), right=True)
        return p.clamp(0, self.num_bands - 1)

    def active_band(self, k: Tensor) -> Tensor:
        """(N,) long: the band generated at k (k = 1 counts as the last position)."""
        return self.band_of_position.to(k.device)[self.active_position(k)]

    def amplitudes(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """Per-band a(k) and da/dk, each (N, B), indexed by band."""
        kappa = self.kappa.to(device=k.device, dtype=k.dtype)
        p = self.active_position(k)
        lo, hi = kappa[p], kappa[p + 1]
        t = ((k - lo) / (hi - lo)).clamp(0, 1)
        mu, dmu = self.bump(t)
        pos = self.position_of_band.to(k.device)[None, :]  # (1, B)
        pk = p[:, None]
        a = torch.where(pos < pk, torch.ones_like(mu)[:, None], torch.where(pos == pk, mu[:, None], torch.zeros_like(mu)[:, None]))
        da = torch.where(pos == pk, (dmu / (hi - lo))[:, None], torch.zeros_like(mu)[:, None])
        return a, da

    def sample(self, x_0: Tensor, x_1: Tensor, k: Tensor) -> PathSample:
        if x_0.shape != x_1.shape:
            raise ValueError(f"x_0 {tuple(x_0.shape)} and x_1 {tuple(x_1.shape)} must have the same shape")
        k = torch.as_tensor(k, dtype=x_1.dtype, device=x_1.device).reshape(-1)
        if k.numel() == 1 and x_1.shape[0] != 1:
            k = k.expand(x_1.shape[0])
        if k.shape[0] != x_1.shape[0]:
            raise ValueError(f"k has {k.shape[0]} entries for a batch of {x_1.shape[0]}; give k of shape (N,)")
        a, da = self.amplitudes(k)
        diff = x_1 - x_0
        pa, pda = self.transform.filter_many(diff, [a, da])
        return PathSample(x_k=x_0 + pa, dx_k=pda, k=k, band=self.active_band(k))

    def project(self, v: Tensor, k: Tensor) -> Tensor:
        """Keep only the active band of a velocity v (N, *shape) at k (N,)."""
        k = torch.as_tensor(k, dtype=v.dtype, device=v.device).reshape(-1).expand(v.shape[0])
        onehot = torch.nn.functional.one_hot(self.active_band(k), self.num_bands).to(v.dtype)
        return self.transform.filter(v, onehot)

    def config(self) -> dict:
        return {"bump": self.bump_name, "allocation": self.allocation, "order": self.order,
                "kappa": self.kappa.tolist()}
