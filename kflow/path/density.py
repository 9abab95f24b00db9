"""Where training draws k: the density of k over [0, 1]."""

from __future__ import annotations

import torch
from torch import Tensor

K_DENSITIES = ("uniform", "logit_normal", "window_logit_normal")


def draw_k(
    n: int, density: str, generator: torch.Generator | None = None, device="cpu", windows: Tensor | None = None
) -> Tensor:
    """n values of k. 'window_logit_normal' needs the path's windows (B, 2): a band drawn uniformly,
    then k at a logit-normal local time inside its window (more weight mid-window, where its bump
    moves; for one band [0, 1] this is 'logit_normal'). The sampling grid 'band_logit' matches it."""
    if density == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if density == "logit_normal":  # more weight mid-path (SD3); never exactly 0 or 1
        return torch.sigmoid(torch.randn(n, generator=generator, device=device))
    if density == "window_logit_normal":
        if windows is None:
            raise ValueError("k density window_logit_normal needs the path's windows")
        w = torch.as_tensor(windows, dtype=torch.float64)
        b = torch.randint(len(w), (n,), generator=generator)
        t = torch.sigmoid(torch.randn(n, generator=generator, dtype=torch.float64))
        return (w[b, 0] + t * (w[b, 1] - w[b, 0])).float().to(device)
    raise ValueError(f"unknown k density {density!r}; use one of {', '.join(K_DENSITIES)}")
