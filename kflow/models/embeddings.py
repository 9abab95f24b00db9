"""Embeddings of the scale time k in [0, 1] and of class labels (with a reserved null class)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..path.schedule import local_time, moving


def k_features(k: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of k (N,) -> (N, dim); k is scaled by 1000 so low frequencies resolve k."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=k.device, dtype=torch.float32) / half)
    args = 1000.0 * k.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class KEmbedding(nn.Module):
    """k -> (N, dim): sinusoids of k, plus what the path says about the bands at k.

    band_edges (the start of every band position but the first; kappa_1 .. kappa_{B-1} for the hard
    path): a one-hot of the band position at k. The target velocity jumps at each boundary while
    x_k does not, and sinusoids of k alone let the network blur that jump (the paper's "K-amplitude
    embedding" idea). A k on a boundary counts as the band that starts there.
    band_windows (the per-band [start, end] k-windows): each band's local time in its window and
    whether it moves at k, so the network sees every band's own schedule once windows overlap."""

    def __init__(
        self,
        dim: int,
        freq_dim: int = 128,
        band_edges: list[float] | tuple = (),
        band_windows: list[list[float]] | tuple = (),
    ):
        super().__init__()
        self.freq_dim = freq_dim
        self.register_buffer("edges", torch.tensor(list(band_edges), dtype=torch.float32), persistent=False)
        w = torch.tensor(list(band_windows), dtype=torch.float32).reshape(-1, 2)
        self.register_buffer("windows", w, persistent=False)
        n_in = freq_dim + (len(band_edges) + 1 if len(band_edges) else 0) + 2 * len(w)
        self.mlp = nn.Sequential(nn.Linear(n_in, dim), nn.SiLU(), nn.Linear(dim, dim))

    def features(self, k: Tensor) -> Tensor:
        f = [k_features(k, self.freq_dim)]
        kf = k.float()
        if self.edges.numel():
            pos = torch.searchsorted(self.edges, kf.contiguous(), right=True)
            f.append(nn.functional.one_hot(pos, self.edges.numel() + 1).float())
        if self.windows.numel():  # per band: its local time in its window, and whether it moves at k
            f += [local_time(kf, self.windows), moving(kf, self.windows).float()]
        return torch.cat(f, dim=-1)

    def forward(self, k: Tensor) -> Tensor:
        # features in float32 (stable under autocast), then the MLP's own dtype (float64 models in tests)
        return self.mlp(self.features(k).to(self.mlp[0].weight.dtype))


def check_labels(y: Tensor, num_classes: int, null_ok: bool = False) -> None:
    """The one range rule for class labels y (N,): 0..num_classes - 1, and num_classes itself (the
    null class) where null_ok. Raises ValueError naming the first bad label and the range."""
    top = num_classes if null_ok else num_classes - 1
    bad = y[(y < 0) | (y > top)]
    if bad.numel():
        null = f" (or {num_classes}, the null class)" if null_ok else ""
        raise ValueError(
            f"class {int(bad[0])} does not exist: classes are 0..{num_classes - 1}{null}; "
            f"labels given {int(y.min())}..{int(y.max())}"
        )


class ClassEmbedding(nn.Module):
    """num_classes labels plus a null class (index num_classes) used when y is None or dropped."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y: Tensor | None, n: int, device) -> Tensor:
        if y is None:
            y = torch.full((n,), self.num_classes, device=device, dtype=torch.long)
        else:
            check_labels(y, self.num_classes, null_ok=True)
        return self.table(y)
