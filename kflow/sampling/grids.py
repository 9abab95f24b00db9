"""k-grids for the ODE solvers. A band-aware grid puts step boundaries on band boundaries, so no
step straddles two bands, and allocates steps per band."""
from __future__ import annotations

from typing import Sequence

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
    if (w <= 0).any():
        raise ValueError(f"step weights {w.tolist()} must be positive")
    share = 1 + (steps - len(w)) * w / w.sum()
    n = share.floor().long()
    rest = steps - int(n.sum())
    n[torch.argsort(share - n, descending=True)[:rest]] += 1
    return n.tolist()


def band_grid(path, steps: int, weights: Sequence[float] | str = "length") -> Tensor:
    """Grid whose boundaries include every kappa_p. weights: 'length' (steps proportional to each
    band's k-interval, i.e. a uniform grid snapped to band edges), 'equal' (same steps per band)
    or explicit per-band weights (indexed by band, not position)."""
    kappa = path.kappa
    B = len(kappa) - 1
    lengths = kappa[1:] - kappa[:-1]  # by position
    if isinstance(weights, str):
        if weights == "length":
            w = lengths
        elif weights == "equal":
            w = torch.ones(B, dtype=torch.float64)
        else:
            raise ValueError(f"unknown step allocation {weights!r}; use 'length', 'equal' or per-band weights")
    else:
        w = torch.as_tensor(weights, dtype=torch.float64)
        if len(w) != B:
            raise ValueError(f"{len(w)} step weights given for {B} bands")
        w = w[path.band_of_position]
    counts = allocate_steps(steps, w.tolist())
    pieces = [torch.linspace(float(kappa[p]), float(kappa[p + 1]), n + 1, dtype=torch.float64)[:-1] for p, n in enumerate(counts)]
    return torch.cat(pieces + [torch.ones(1, dtype=torch.float64)])
