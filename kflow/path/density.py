"""Where training draws k: the density of k over [0, 1]."""

from __future__ import annotations

import torch
from torch import Tensor

K_DENSITIES = ("uniform", "logit_normal")


def draw_k(n: int, density: str, generator: torch.Generator | None = None, device="cpu") -> Tensor:
    if density == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if density == "logit_normal":  # more weight mid-path (SD3); never exactly 0 or 1
        return torch.sigmoid(torch.randn(n, generator=generator, device=device))
    raise ValueError(f"unknown k density {density!r}; use one of {', '.join(K_DENSITIES)}")
