"""Broadcasting helpers shared by the path, the models and the samplers (k-diffusion's
append_dims): a per-sample k against a batch, and a per-sample scalar against an image."""

from __future__ import annotations

import torch
from torch import Tensor


def append_dims(t: Tensor, ndim: int) -> Tensor:
    """t (N,) -> (N, 1, ..., 1) with `ndim` dimensions in all, to scale a batch (N, *shape)."""
    extra = ndim - t.dim()
    if extra < 0:
        raise ValueError(f"cannot broadcast a {t.dim()}-d tensor to {ndim} dimensions")
    return t.reshape(*t.shape, *([1] * extra))


def per_sample(k, x: Tensor) -> Tensor:
    """k (a number, a 1-element or an (N,) tensor) as an (N,) tensor on x's device and dtype, N = len(x)."""
    k = torch.as_tensor(k, dtype=x.dtype, device=x.device).reshape(-1)
    if k.numel() == 1:
        return k.expand(x.shape[0])
    if k.shape[0] != x.shape[0]:
        raise ValueError(f"k has {k.shape[0]} entries for a batch of {x.shape[0]}; give k of shape (N,)")
    return k
