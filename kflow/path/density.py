"""Where training draws k: the density of k over [0, 1]."""

from __future__ import annotations

import torch
from torch import Tensor

K_DENSITIES = ("uniform", "logit_normal", "window_logit_normal")
# staged models: k per sample over every stage (the group sizes vary from step to step), a fixed
# number of samples per stage every step (stratified: one shape per stage, which CPU kernels cache),
# or one stage per step
STAGE_BATCHES = ("mixed", "stratified", "one")


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


def _cdf(density: str, k: Tensor) -> Tensor:
    """P(K < k) under `density` ('uniform' or 'logit_normal'), k (S,) float64 in [0, 1]."""
    if density == "uniform":
        return k.clamp(0, 1)
    if density == "logit_normal":
        return torch.special.ndtr(torch.logit(k))  # logit(0) = -inf, logit(1) = inf: exact ends
    raise ValueError(
        f"drawing k by stage needs train.k_density=uniform or logit_normal (a distribution function in "
        f"closed form); got {density!r}"
    )


def k_mass(density: str, edges: Tensor) -> Tensor:
    """(S,) float64: the density's probability of each interval [edges[s], edges[s + 1])."""
    return _cdf(density, edges.double()).diff()


def draw_k_between(n: int, density: str, lo: Tensor, hi: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """(n,) k from `density` restricted to [lo_i, hi_i) per draw (lo, hi: (n,)), by inverting its
    distribution function: the same k the unrestricted density gives, conditioned on the interval."""
    a, b = _cdf(density, lo.double()), _cdf(density, hi.double())
    u = a + (b - a) * torch.rand(n, generator=generator, dtype=torch.float64)
    k = u if density == "uniform" else torch.sigmoid(torch.special.ndtri(u))
    lo32, hi32 = lo.float(), torch.nextafter(hi.float(), lo.float())  # [lo, hi) also after rounding
    return torch.minimum(torch.maximum(k.float(), lo32), torch.where(hi >= 1, hi.float(), hi32))
