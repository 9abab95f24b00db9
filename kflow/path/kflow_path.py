"""The K-Flow path (docs/maths.md: the paper's Eq. 9-11, corrected), with per-band k-windows.

Each band b moves on its own window [s_b, e_b] of k: with local time t_b = clip((k - s_b) /
(e_b - s_b), 0, 1) its amplitude is a_b(k) = mu(t_b) (0 before the window, 1 after), and

    x_k  = x_0 + P(a) (x_1 - x_0)        P(a) = F^T diag(a) F
    dx_k = P(a') (x_1 - x_0)             a'_b = mu'(t_b) / (e_b - s_b) inside the window, else 0

The hard path of the paper gives band position p the interval [kappa_p, kappa_{p+1}) (from the
allocation and the order): windows that touch but never overlap. `overlap=rho` widens each one to
[(1 - rho) s, e + rho (1 - e)]: rho = 0 is the hard path, rho = 1 puts every band on [0, 1], which
is plain flow matching for any transform (P(mu(k) 1) = mu(k) I). One band with the identity
transform is rectified flow: x_k = k x_1 + (1 - k) x_0.

Everything about the schedule lives here: amplitudes and local times, which bands have started or
finished at k, the boundaries a band-aware grid must hit, and the final-sample estimate from a
velocity. Samplers, steering, restoration and analysis ask the path; none reads kappa or the bump.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..transforms.base import Transform
from ..utils.tensors import per_sample
from . import windows as band_windows
from .bumps import get_bump

ORDERS = ("low_to_high", "high_to_low")
ALLOCATIONS = ("uniform", "energy")
FLAT_BUMP_RULES = ("nan", "keep")  # x1_estimate on a started band whose bump is flat (mu' ~ 0)


@dataclass
class PathSample:
    x_k: Tensor  # (N, *shape) point on the path
    dx_k: Tensor  # (N, *shape) velocity d x_k / d k, the regression target
    k: Tensor  # (N,)
    band: Tensor  # (N,) long, the band being generated at k


class KFlowPath:
    def __init__(
        self,
        transform: Transform,
        bump: str = "linear",
        allocation: str | Sequence[float] = "uniform",
        order: str = "low_to_high",
        energy: Sequence[float] | Tensor | None = None,
        overlap: float = 0.0,
        windows: Sequence[Sequence[float]] | Tensor | None = None,
    ):
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
        self.kappa[-1] = 1.0  # (B+1,) float64, the hard path's position boundaries
        self.overlap = float(overlap)
        if not 0.0 <= self.overlap <= 1.0:  # also refuses NaN
            raise ValueError(f"overlap={overlap} must lie in [0, 1] (0: hard bands, 1: every band on [0, 1], i.e. FM)")
        if windows is not None and self.overlap != 0.0:
            raise ValueError("give either overlap or explicit windows, not both")
        self._windows = self._hard_windows(self.overlap) if windows is None else self._check_windows(windows, B)

    def _hard_windows(self, rho: float) -> Tensor:
        """(B, 2) by band: [kappa_p, kappa_{p+1}] of its position, widened by rho on both sides."""
        pos = self.position_of_band
        lo, hi = self.kappa[pos], self.kappa[pos + 1]
        if rho == 0.0:
            return torch.stack([lo, hi], 1)
        return torch.stack([(1 - rho) * lo, hi + rho * (1 - hi)], 1)

    @staticmethod
    def _check_windows(windows, B: int) -> Tensor:
        w = torch.as_tensor(windows, dtype=torch.float64)
        if w.shape != (B, 2):
            raise ValueError(f"windows must be {B} pairs [start, end], one per band; got shape {tuple(w.shape)}")
        s, e = w[:, 0], w[:, 1]
        if not torch.isfinite(w).all() or (s < 0).any() or (e > 1).any() or (s >= e).any():
            raise ValueError(f"windows {w.tolist()} must satisfy 0 <= start < end <= 1 for every band")
        order = torch.argsort(s)
        reach = torch.cummax(e[order], 0).values  # furthest end among windows starting so far
        if s.min() > 0 or e.max() < 1 or (B > 1 and (s[order[1:]] > reach[:-1]).any()):
            raise ValueError(
                f"windows {w.tolist()} leave some k in [0, 1] where no band moves; they must cover [0, 1] without gaps"
            )
        return w

    @staticmethod
    def _allocation_weights(allocation, B: int, energy) -> Tensor:
        if isinstance(allocation, str):
            if allocation == "uniform":
                return torch.ones(B, dtype=torch.float64)
            if allocation == "energy":
                if energy is None:
                    raise ValueError(
                        "allocation='energy' needs energy= per-band energies measured from data "
                        "(transform.band_energy(x))"
                    )
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

    def windows(self) -> Tensor:
        """(B, 2) float64: the k-window [start, end] of each band, indexed by band."""
        return self._windows.clone()

    def boundaries(self) -> Tensor:
        """(M + 1,) float64, sorted: 0, every window start and end, 1. Between two of them the set of
        moving bands is fixed; a band-aware grid puts a step boundary on each (for the hard path
        these are kappa)."""
        return torch.unique(torch.cat([self._windows.flatten(), torch.tensor([0.0, 1.0], dtype=torch.float64)]))

    def _win(self, k: Tensor) -> tuple[Tensor, Tensor]:
        w = self._windows.to(device=k.device, dtype=k.dtype)
        return w[:, 0], w[:, 1]

    def started(self, k: Tensor) -> Tensor:
        """(N, B) bool: band b has begun to move at k (k >= s_b)."""
        s, _ = self._win(k)
        return k[:, None] >= s[None, :]

    def finished(self, k: Tensor) -> Tensor:
        """(N, B) bool: band b is settled at k (k >= e_b): it holds data from here on."""
        _, e = self._win(k)
        return k[:, None] >= e[None, :]

    def moving(self, k: Tensor) -> Tensor:
        """(N, B) bool: k inside band b's window [s_b, e_b) (the last window closed at k = 1)."""
        return band_windows.moving(k, self._windows.to(device=k.device, dtype=k.dtype))

    def position_starts(self) -> Tensor:
        """(B,) float64: where each position's window starts (for the hard path kappa_0 .. kappa_{B-1});
        the edges of the band k-embedding."""
        return self._windows[self.band_of_position, 0].clone()

    def stage_starts(self) -> Tensor:
        """(B,) float64: where stage s begins, the start of band s's window (band order). Stage s is
        the stretch of k where bands 0..s have started and s + 1.. hold their noise untouched; the
        starts are boundaries(), so a band-aware grid never straddles a change of stage."""
        s = self._windows[:, 0]
        if self.order != "low_to_high" or bool((s[1:] < s[:-1]).any()):
            raise ValueError(
                f"stages need bands that start coarse to fine (path.order=low_to_high, window starts "
                f"{s.tolist()} non-decreasing by band); this path starts them in another order"
            )
        return s.clone()

    def stage(self, k: Tensor) -> Tensor:
        """(N,) long: the finest band that has started at k (k >= its window's start); bands 0..stage
        hold all of x_k's dependence on the data, and the target velocity lives on them alone."""
        starts = self.stage_starts().to(device=k.device, dtype=k.dtype)
        return (k[:, None] >= starts[None, :]).sum(1).clamp_min(1) - 1

    def active_position(self, k: Tensor) -> Tensor:
        """(N,) long: the last position whose window has started (the band being generated; with
        overlapping windows the most recent of the moving ones)."""
        s, _ = self._win(k)
        s_pos = s[self.band_of_position.to(k.device)]  # (B,) by position
        p = torch.arange(self.num_bands, device=k.device)
        return torch.where(k[:, None] >= s_pos[None, :], p[None, :], 0).amax(1)

    def active_band(self, k: Tensor) -> Tensor:
        """(N,) long: the band generated at k (k = 1 counts as the last position)."""
        return self.band_of_position.to(k.device)[self.active_position(k)]

    def local_time(self, k: Tensor) -> Tensor:
        """(N, B): t_b = clip((k - s_b) / (e_b - s_b), 0, 1)."""
        return band_windows.local_time(k, self._windows.to(device=k.device, dtype=k.dtype))

    def amplitudes(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """Per-band a(k) and da/dk, each (N, B), indexed by band."""
        s, e = self._win(k)
        mu, dmu = self.bump(self.local_time(k))
        inside = self.moving(k)  # mu(t) there; 1 after the window, 0 before
        a = torch.where(inside, mu, (k[:, None] >= e[None, :]).to(mu.dtype))
        da = torch.where(inside, dmu / (e - s)[None, :], torch.zeros_like(dmu))
        return a, da

    def x1_estimate(self, x_k: Tensor, v: Tensor, k: Tensor, flat: str = "nan", eps: float = 1e-3) -> Tensor:
        """The final sample x_1 that (x_k, v) point to, band by band (exact for the conditional
        velocity). Per band c_k = c_0 + a (c_1 - c_0) and v = a' (c_1 - c_0), so
        c_1 = c_k + (1 - a) / a' v: finished bands keep c_k, moving bands extrapolate (for one band,
        linear bump: FM's x_k + (1 - k) v), bands not started yet hold noise the velocity says
        nothing about: 0. Where a started band's a' < eps (a flat bump's start), `flat` decides:
        'nan' marks the estimate undefined, 'keep' keeps c_k there (no extrapolation).
        x_k, v: (N, *shape); k: (N,) or a scalar."""
        if flat not in FLAT_BUMP_RULES:
            raise ValueError(f"flat={flat!r}: use one of {', '.join(FLAT_BUMP_RULES)}")
        k = per_sample(k, x_k)
        a, da = self.amplitudes(k)
        started = self.started(k)
        finished = (a >= 1) & (da == 0)
        steep = da > eps
        gain = torch.where(steep & ~finished, (1 - a) / da.clamp_min(eps), torch.zeros_like(a))
        keep = started.to(a.dtype)
        if flat == "nan":
            undefined = started & ~finished & ~steep
            keep = torch.where(undefined, torch.full_like(a, float("nan")), keep)
        return self.transform.filter(x_k, keep) + self.transform.filter(v, gain)

    def velocity_from_x1(self, x_k: Tensor, x1_hat: Tensor, k: Tensor, eps: float = 1e-3) -> Tensor:
        """The velocity at (x_k, k) of the path towards the endpoint x1_hat: the inverse of x1_estimate
        on the moving bands. Per band c_1 - c_k = (1 - a)(c_1 - c_0) and v = a' (c_1 - c_0), so
        v = a' / (1 - a) (c_1 - c_k); zero on bands not moving. With x1_hat = E[x_1 | x_k] this is the
        marginal velocity (it is linear in x_1), which is what endpoint-predicting networks sample
        with. 1 - a is clamped at eps: at a band's end the data term is all that is left.
        x_k, x1_hat: (N, *shape); k: (N,) or a scalar."""
        k = per_sample(k, x_k)
        a, da = self.amplitudes(k)
        gain = torch.where(self.moving(k), da / (1 - a).clamp_min(eps), torch.zeros_like(da))
        return self.transform.filter(x1_hat - x_k, gain)

    def sample(self, x_0: Tensor, x_1: Tensor, k: Tensor) -> PathSample:
        if x_0.shape != x_1.shape:
            raise ValueError(f"x_0 {tuple(x_0.shape)} and x_1 {tuple(x_1.shape)} must have the same shape")
        k = per_sample(k, x_1)
        a, da = self.amplitudes(k)
        diff = x_1 - x_0
        pa, pda = self.transform.filter_many(diff, [a, da])
        return PathSample(x_k=x_0 + pa, dx_k=pda, k=k, band=self.active_band(k))

    def project(self, v: Tensor, k: Tensor) -> Tensor:
        """Keep only the moving bands of a velocity v (N, *shape) at k (N,): where the target lives."""
        k = per_sample(k, v)
        return self.transform.filter(v, self.moving(k).to(v.dtype))
