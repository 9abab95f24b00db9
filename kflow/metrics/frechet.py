"""Frechet distance between Gaussians fitted to features, and improved precision / recall."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class FeatureStats:
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int

    @classmethod
    def of(cls, feats) -> FeatureStats:
        f = np.asarray(feats, dtype=np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"features must be (N >= 2, D), got {f.shape}")
        return cls(f.mean(0), np.cov(f, rowvar=False), len(f))


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2}).

    tr (S_a S_b)^{1/2} is the sum of square roots of the eigenvalues of S_a^{1/2} S_b S_a^{1/2},
    a symmetric PSD matrix: no complex sqrtm and no 'imaginary component' fix-ups.
    """
    ea, va = np.linalg.eigh(a.sigma)
    sqrt_a = (va * np.sqrt(np.clip(ea, 0, None))) @ va.T
    m = sqrt_a @ b.sigma @ sqrt_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * tr_sqrt)


def _kth_radius(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance of each row to its k-th nearest other row."""
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself at distance 0
    return torch.cat(out)


def _covered(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 2048) -> Tensor:
    hits = []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i : i + chunk], centres)
        hits.append((d <= radii[None]).any(1))
    return torch.cat(hits)


@dataclass
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def precision_recall(real, fake, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019): the manifold of a set is the union
    of balls around its points reaching their k-th nearest neighbour; precision is the share of
    fake points inside the real manifold, recall the share of real points inside the fake one."""
    r = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if len(r) <= k or len(f) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} real and fake samples")
    precision = _covered(f, r, _kth_radius(r, k)).double().mean().item()
    recall = _covered(r, f, _kth_radius(f, k)).double().mean().item()
    return PrecisionRecall(precision, recall, k)
