"""The band schedule: when each band moves in k and how (its window and the bump), without a transform.

Band b moves on its window [s_b, e_b] of k: with local time t_b = clip((k - s_b) / (e_b - s_b), 0, 1)
its amplitude is a_b(k) = mu(t_b) (0 before the window, 1 after), and da_b/dk = mu'(t_b) / (e_b - s_b)
inside the window, 0 elsewhere.

The hard path of the paper gives band position p the interval [kappa_p, kappa_{p+1}) (from the
allocation and the order): windows that touch but never overlap. `overlap=rho` widens each one to
[(1 - rho) s, e + rho (1 - e)]: rho = 0 is the hard path, rho = 1 puts every band on [0, 1] (plain
flow matching for any transform). Explicit `windows` replace both.

The path (KFlowPath) owns one of these; the model's k-embedding and the molecule configs read the
same numbers from here, so the three can never disagree. Everything about the schedule lives here:
amplitudes, local times, which bands have started, moved or finished at k, stages, and the
boundaries a band-aware grid must hit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .bumps import get_bump

ORDERS = ("low_to_high", "high_to_low")
ALLOCATIONS = ("uniform", "energy")


def local_time(k: Tensor, windows: Tensor) -> Tensor:
    """(N, B): t_b = clip((k - s_b) / (e_b - s_b), 0, 1), 0 before band b's window, 1 after it.
    k: (N,); windows: (B, 2) [start, end] per band, on k's device."""
    s, e = windows[:, 0], windows[:, 1]
    return ((k[:, None] - s[None, :]) / (e - s)[None, :]).clamp(0, 1)


def moving(k: Tensor, windows: Tensor) -> Tensor:
    """(N, B) bool: k inside band b's window [s_b, e_b) (a window that ends at 1 is closed there)."""
    s, e = windows[:, 0], windows[:, 1]
    return (k[:, None] >= s[None, :]) & ((k[:, None] < e[None, :]) | (e[None, :] >= 1))


def allocation_weights(allocation: str | Sequence[float], num_bands: int, energy=None) -> Tensor:
    """(B,) float64 positive weights per band: 'uniform', 'energy' (the measured `energy`), or a list."""
    B = num_bands
    if isinstance(allocation, str):
        if allocation == "uniform":
            return torch.ones(B, dtype=torch.float64)
        if allocation != "energy":
            raise ValueError(f"unknown allocation {allocation!r}; use 'uniform', 'energy' or a list of {B} weights")
        if energy is None:
            raise ValueError(
                "allocation='energy' needs energy= per-band energies measured from data (transform.band_energy(x))"
            )
        allocation = torch.as_tensor(energy, dtype=torch.float64).flatten()
        if len(allocation) != B:
            raise ValueError(f"energy has {len(allocation)} entries but the transform has {B} bands")
    w = torch.as_tensor(allocation, dtype=torch.float64).flatten()
    if len(w) != B or not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"allocation weights {w.tolist()} must be {B} positive finite numbers (one per band)")
    return w


def check_windows(windows, num_bands: int) -> Tensor:
    """(B, 2) float64 windows, refused unless 0 <= start < end <= 1 per band and they cover [0, 1]."""
    w = torch.as_tensor(windows, dtype=torch.float64)
    if w.shape != (num_bands, 2):
        raise ValueError(f"windows must be {num_bands} pairs [start, end], one per band; got shape {tuple(w.shape)}")
    s, e = w[:, 0], w[:, 1]
    if not torch.isfinite(w).all() or (s < 0).any() or (e > 1).any() or (s >= e).any():
        raise ValueError(f"windows {w.tolist()} must satisfy 0 <= start < end <= 1 for every band")
    order = torch.argsort(s)
    reach = torch.cummax(e[order], 0).values  # furthest end among windows starting so far
    if s.min() > 0 or e.max() < 1 or (num_bands > 1 and (s[order[1:]] > reach[:-1]).any()):
        raise ValueError(
            f"windows {w.tolist()} leave some k in [0, 1] where no band moves; they must cover [0, 1] without gaps"
        )
    return w


class BandSchedule:
    """Windows and bump of `num_bands` bands. k: (N,) everywhere; results are (N, B), indexed by band."""

    def __init__(
        self,
        num_bands: int,
        bump: str = "linear",
        allocation: str | Sequence[float] = "uniform",
        order: str = "low_to_high",
        energy: Sequence[float] | Tensor | None = None,
        overlap: float = 0.0,
        windows: Sequence[Sequence[float]] | Tensor | None = None,
    ):
        B = self.num_bands = int(num_bands)
        self.bump_name = bump
        self.bump = get_bump(bump)
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
        self.order = order
        # position p -> band
        self.band_of_position = torch.arange(B) if order == "low_to_high" else torch.arange(B - 1, -1, -1)
        self.position_of_band = torch.argsort(self.band_of_position)
        weights = allocation_weights(allocation, B, energy)
        # what rebuilds this schedule: 'uniform', or the explicit per-band weights ('energy' resolved)
        self.allocation = "uniform" if allocation == "uniform" else weights.tolist()
        w_pos = weights[self.band_of_position]
        self.kappa = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(w_pos / w_pos.sum(), 0)])
        self.kappa[-1] = 1.0  # (B+1,) float64, the hard path's position boundaries
        self.overlap = float(overlap)
        if not 0.0 <= self.overlap <= 1.0:  # also refuses NaN
            raise ValueError(f"overlap={overlap} must lie in [0, 1] (0: hard bands, 1: every band on [0, 1], i.e. FM)")
        if windows is not None and self.overlap != 0.0:
            raise ValueError("give either overlap or explicit windows, not both")
        self._windows = self._hard_windows(self.overlap) if windows is None else check_windows(windows, B)

    def _hard_windows(self, rho: float) -> Tensor:
        """(B, 2) by band: [kappa_p, kappa_{p+1}] of its position, widened by rho on both sides."""
        pos = self.position_of_band
        lo, hi = self.kappa[pos], self.kappa[pos + 1]
        if rho == 0.0:
            return torch.stack([lo, hi], 1)
        return torch.stack([(1 - rho) * lo, hi + rho * (1 - hi)], 1)

    def windows(self) -> Tensor:
        """(B, 2) float64: the k-window [start, end] of each band, indexed by band."""
        return self._windows.clone()

    def boundaries(self) -> Tensor:
        """(M + 1,) float64, sorted: 0, every window start and end, 1. Between two of them the set of
        moving bands is fixed; a band-aware grid puts a step boundary on each (for the hard path
        these are kappa)."""
        return torch.unique(torch.cat([self._windows.flatten(), torch.tensor([0.0, 1.0], dtype=torch.float64)]))

    def _win(self, k: Tensor) -> Tensor:
        return self._windows.to(device=k.device, dtype=k.dtype)

    def started(self, k: Tensor) -> Tensor:
        """(N, B) bool: band b has begun to move at k (k >= s_b)."""
        return k[:, None] >= self._win(k)[None, :, 0]

    def finished(self, k: Tensor) -> Tensor:
        """(N, B) bool: band b is settled at k (k >= e_b): it holds data from here on."""
        return k[:, None] >= self._win(k)[None, :, 1]

    def moving(self, k: Tensor) -> Tensor:
        """(N, B) bool: k inside band b's window [s_b, e_b) (the last window closed at k = 1)."""
        return moving(k, self._win(k))

    def local_time(self, k: Tensor) -> Tensor:
        """(N, B): t_b = clip((k - s_b) / (e_b - s_b), 0, 1)."""
        return local_time(k, self._win(k))

    def amplitudes(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """Per-band a(k) and da/dk, each (N, B): mu(t_b) inside the window, 1 after it, 0 before."""
        w = self._win(k)
        mu, dmu = self.bump(local_time(k, w))
        inside = moving(k, w)
        a = torch.where(inside, mu, self.finished(k).to(mu.dtype))
        da = torch.where(inside, dmu / (w[:, 1] - w[:, 0])[None, :], torch.zeros_like(dmu))
        return a, da

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
        s_pos = self._win(k)[self.band_of_position.to(k.device), 0]  # (B,) by position
        p = torch.arange(self.num_bands, device=k.device)
        return torch.where(k[:, None] >= s_pos[None, :], p[None, :], 0).amax(1)

    def active_band(self, k: Tensor) -> Tensor:
        """(N,) long: the band generated at k (k = 1 counts as the last position)."""
        return self.band_of_position.to(k.device)[self.active_position(k)]
