"""k-grids for the ODE solvers. A band-aware grid puts step boundaries on band boundaries, so no
step straddles two bands, and allocates steps per band."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def uniform_grid(steps: int, start: float = 0.0, end: float = 1.0) -> Tensor:
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    return torch.linspace(start, end, steps + 1, dtype=torch.float64)


def allocate_steps(steps: int, weights: Sequence[float]) -> list[int]:
    """Split `steps` over segments in proportion to weights, at least one each (largest remainder)."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    if steps < len(w):
        raise ValueError(f"steps={steps} is fewer than the {len(w)} bands; give at least one step per band")
    if not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"step weights {w.tolist()} must be positive")
    share = 1 + (steps - len(w)) * w / w.sum()
    n = share.floor().long()
    rest = steps - int(n.sum())
    n[torch.argsort(share - n, descending=True)[:rest]] += 1
    return n.tolist()


STEP_ALLOCATIONS = ("length", "equal")


def parse_step_allocation(text: str) -> str | list[float]:
    """'length', 'equal', or comma-separated positive per-band weights ('1,2,4') -> what band_grid takes."""
    if text in STEP_ALLOCATIONS:
        return text
    try:
        w = [float(v) for v in str(text).split(",")]
    except ValueError:
        w = []
    if not w or not all(math.isfinite(v) and v > 0 for v in w):
        raise ValueError(f"{text!r}: use length, equal or comma-separated positive weights (e.g. 1,2,4)")
    return w


def band_grid(path, steps: int, weights: Sequence[float] | str = "length", spacing: str = "uniform") -> Tensor:
    """Grid whose boundaries include every boundary of the path's windows (path.boundaries(): for
    the hard path the band edges kappa), so no step straddles a change in which bands move.
    weights: 'length' (steps proportional to each segment's length, i.e. a uniform grid snapped to
    the boundaries), 'equal' (same steps per segment) or explicit per-band weights (indexed by
    band; for paths whose segments are the bands, i.e. windows that do not overlap).
    spacing inside each segment: 'uniform', or 'logit_normal' (points at the quantiles of a
    logit-normal, denser mid-segment: what training with k_density=window_logit_normal sees most)."""
    edges = path.boundaries()
    lengths = edges[1:] - edges[:-1]  # (M,) segments
    if isinstance(weights, str):
        weights = parse_step_allocation(weights)
    if isinstance(weights, str):
        w = lengths if weights == "length" else torch.ones(len(lengths), dtype=torch.float64)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64)
        B = path.num_bands
        if len(w) != B:
            raise ValueError(f"{len(w)} step weights given for {B} bands")
        if len(lengths) != B:
            raise ValueError("per-band step weights need windows that do not overlap; use 'length' or 'equal'")
        w = w[path.band_of_position]
    counts = allocate_steps(steps, w.tolist())
    if spacing not in ("uniform", "logit_normal"):
        raise ValueError(f"unknown step spacing {spacing!r}; use uniform or logit_normal")
    pieces = []
    for i, n in enumerate(counts):
        u = torch.linspace(0, 1, n + 1, dtype=torch.float64)[:-1]  # fractions of the segment
        if spacing == "logit_normal":
            u = torch.sigmoid(torch.special.ndtri(u))  # quantiles; ndtri(0) = -inf gives exactly 0
        pieces.append(edges[i] + u * (edges[i + 1] - edges[i]))
    return torch.cat(pieces + [torch.ones(1, dtype=torch.float64)])
