"""Noise splitting: one shared draw of the noise on chosen bands, fresh noise on the others.

Generation is deterministic given x_0, and in K-Flow each band of x_0 is the noise that band is
generated from. The band generated first decides most of the sample: with low_to_high order,
sharing the coarse bands' noise fixes the layout and leaves the detail partly free; with
high_to_low, sharing the fine bands' noise fixes nearly everything (measured in docs/steering.md).
The mix is exact in the transform's coefficients, so x_0 is still N(0, I).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..sampling.noise import draw_x0
from ..transforms.base import Transform


def band_mask(
    transform: Transform, fix_bands: Sequence[int] | None = None, vary_bands: Sequence[int] | None = None
) -> Tensor:
    """(D,) bool: coefficients whose noise is shared. Give exactly one of fix_bands / vary_bands."""
    B = transform.num_bands
    if (fix_bands is None) == (vary_bands is None):
        raise ValueError("give exactly one of fix_bands (shared noise) or vary_bands (fresh noise)")
    chosen = list(fix_bands if fix_bands is not None else vary_bands)
    bad = [b for b in chosen if not 0 <= int(b) < B]
    if bad or not chosen:
        raise ValueError(f"bands {chosen} do not fit this transform: it has bands 0..{B - 1} (0 = coarsest)")
    fixed = torch.isin(transform.bands.cpu(), torch.tensor(chosen, dtype=torch.long))
    return fixed if fix_bands is not None else ~fixed


def split_noise(
    transform: Transform,
    n: int,
    fix_bands: Sequence[int] | None = None,
    vary_bands: Sequence[int] | None = None,
    seed: int = 0,
    shared_seed: int | None = None,
    dtype=torch.float32,
) -> Tensor:
    """x_0 (n, *shape): coefficients on the fixed bands are one draw (from shared_seed, default seed)
    shared by all n samples; the other coefficients are drawn per sample from seed."""
    fixed = band_mask(transform, fix_bands, vary_bands)
    shape, dev = tuple(transform.shape), transform.bands.device
    shared = draw_x0(1, shape, seed if shared_seed is None else shared_seed, torch.float64)
    fresh = draw_x0(n, shape, seed, torch.float64)  # the noise `kflow sample --seed` starts from
    c = torch.where(fixed.to(dev), transform.analyze(shared.to(dev)), transform.analyze(fresh.to(dev)))
    return transform.synthesize(c).to(dtype).cpu()


def mix_bands(transform: Transform, c_keep: Tensor, c_other: Tensor, bands: Sequence[int]) -> Tensor:
    """Coefficients (N, D): c_keep's on `bands` (exact copies), c_other's on the other bands."""
    keep = band_mask(transform, fix_bands=bands).to(c_keep.device)
    return torch.where(keep, c_keep, c_other)
