"""Graph Fourier bands: signals on the nodes of a weighted graph, split by graph frequency.

A sample is x (V, F): F features (e.g. a molecule's translation and rotation vector) on each of
V nodes. With the graph Laplacian L = D - W (or the normalised I - D^-1/2 W D^-1/2) and its
eigenvectors U sorted by eigenvalue, the coefficients are U^T x, one row per graph frequency and
feature. Low frequencies are smooth over the graph (eigenvalue 0: the same value on every node of
a connected graph, i.e. a collective motion), high ones alternate between neighbours. Bands group
consecutive frequencies, so band 0 is the coarsest, as for images.

The graph may differ per sample (a batch of weight matrices (N, V, V), e.g. built from each
sample's own starting geometry); the transform then acts sample by sample and only takes batches
of that size. On a path graph with unit weights U is the orthonormal DCT-II basis.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import Transform, fix_signs, split_sizes


def laplacian(weights: Tensor, normalized: bool = False) -> Tensor:
    """(..., V, V) symmetric non-negative weights -> (..., V, V) graph Laplacian."""
    deg = weights.sum(-1)
    if not normalized:
        return torch.diag_embed(deg) - weights
    inv = deg.clamp_min(1e-12).rsqrt()
    eye = torch.eye(weights.shape[-1], dtype=weights.dtype, device=weights.device)
    return eye - inv[..., :, None] * weights * inv[..., None, :]


def gaussian_weights(points: Tensor, sigma: float | Tensor | None = None) -> Tensor:
    """Fully connected weights w_ij = exp(-|p_i - p_j|^2 / (2 sigma^2)), zero diagonal, from node
    positions (..., V, 3); sigma defaults to the median pairwise distance of each sample."""
    d = torch.cdist(points, points)
    V = points.shape[-2]
    off = ~torch.eye(V, dtype=torch.bool, device=points.device)
    if sigma is None:
        sigma = d[..., off].median(-1).values[..., None, None]
    w = torch.exp(-d.pow(2) / (2 * torch.as_tensor(sigma, dtype=d.dtype) ** 2))
    return w * off


def graph_spectrum(weights: Tensor, normalized: bool = False) -> tuple[Tensor, Tensor]:
    """(eigenvalues (..., V), eigenvectors (..., V, V)) of the graph Laplacian in float64, ascending
    frequency, signs fixed: the basis a GraphTransform uses. A graph that does not change (a
    cluster's start) can have it computed once and passed as GraphTransform(spectrum=...)."""
    if weights.dim() not in (2, 3) or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"GraphTransform: weights must be (V, V) or (N, V, V), got {tuple(weights.shape)}")
    if not torch.allclose(weights, weights.transpose(-1, -2)) or (weights < 0).any():
        raise ValueError("GraphTransform: weights must be symmetric and non-negative")
    evals, U = torch.linalg.eigh(laplacian(weights.double(), normalized))
    return evals, fix_signs(U)


class GraphTransform(Transform):
    name = "graph"

    def __init__(
        self,
        weights: Tensor | None = None,
        features: int = 1,
        num_bands: int = 2,
        split: str = "dyadic",
        band_sizes: Sequence[int] | None = None,
        normalized: bool = False,
        own_band_features: Sequence[int] = (),
        spectrum: tuple[Tensor, Tensor] | None = None,
    ):
        """weights (V, V) or (N, V, V), or instead spectrum=graph_spectrum(weights, normalized)."""
        if (weights is None) == (spectrum is None):
            raise ValueError("GraphTransform: give the graph's weights or its spectrum (graph_spectrum), not both")
        evals, U = graph_spectrum(weights, normalized) if spectrum is None else spectrum
        V = U.shape[-1]
        if band_sizes is None:
            band_sizes = split_sizes(V, num_bands, split, "GraphTransform")
        if sum(band_sizes) != V or min(band_sizes) < 1:
            raise ValueError(f"GraphTransform band sizes {list(band_sizes)} must be positive and sum to V={V}")
        self.shape = (V, int(features))
        self.basis, self.eigenvalues = U, evals  # (..., V, V) columns = frequencies, (..., V)
        self.sizes = [int(s) for s in band_sizes]
        node_band = torch.repeat_interleave(torch.arange(len(self.sizes)), torch.tensor(self.sizes))
        self.bands = node_band.repeat_interleave(int(features)).long()  # coefficient order: (frequency, feature)
        # features that do not follow the graph bands: all their frequencies form one more, last band
        # (e.g. the molecules' rotations, moved by their own k-window while translations go by band)
        own = sorted(set(int(f) for f in own_band_features))
        if own and (own[0] < 0 or own[-1] >= features or len(own) == features):
            raise ValueError(
                f"GraphTransform: own_band_features {own} must be some (not all) of the features 0..{features - 1}"
            )
        if own:
            feature_of = torch.arange(V * int(features)) % int(features)
            self.bands[torch.isin(feature_of, torch.tensor(own))] = len(self.sizes)
        self.own_band_features = tuple(own)
        self.normalized = normalized
        self._cache: dict = {}

    @property
    def batched(self) -> bool:
        return self.basis.dim() == 3

    def _basis_for(self, like: Tensor) -> Tensor:
        if self.batched and like.shape[0] != self.basis.shape[0]:
            raise ValueError(
                f"this GraphTransform holds {self.basis.shape[0]} per-sample graphs but got a batch of "
                f"{like.shape[0]}; build it from the graphs of this batch"
            )
        return self._basis_like(like)

    def analyze(self, x: Tensor) -> Tensor:
        self.check_input(x)
        U = self._basis_for(x)
        c = U.transpose(-1, -2) @ x  # (N, V, F): row j = frequency j
        return c.reshape(len(x), -1)

    def synthesize(self, c: Tensor) -> Tensor:
        return self._basis_for(c) @ c.reshape(len(c), *self.shape)
