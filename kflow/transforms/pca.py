"""PCA bands: a complete orthonormal eigenbasis of the data covariance.

The basis U (D, D) holds eigenvectors of the centred covariance sorted by decreasing variance;
analyze is c = x U (no mean subtraction: the path needs a linear map). torch.linalg.eigh returns
a complete orthonormal basis even when the covariance is rank deficient (fewer samples than
dimensions), so the transform stays exact; the null-space directions come last.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .base import Transform, fix_signs, split_sizes


class PCATransform(Transform):
    name = "pca"

    def __init__(self, basis: Tensor, variance: Tensor, shape: Sequence[int], band_sizes: Sequence[int]):
        D = math.prod(shape)
        if basis.shape != (D, D):
            raise ValueError(
                f"PCA basis of shape {tuple(basis.shape)} does not fit samples of shape {tuple(shape)} "
                f"(needs ({D}, {D})); refit the PCA on data of this shape"
            )
        if sum(band_sizes) != D or min(band_sizes) < 1:
            raise ValueError(f"PCA band sizes {list(band_sizes)} must be positive and sum to D={D}")
        self.shape = tuple(int(s) for s in shape)
        self.basis = basis  # (D, D), columns = components
        self.variance = variance  # (D,)
        self.sizes = [int(s) for s in band_sizes]
        self.bands = torch.repeat_interleave(torch.arange(len(self.sizes)), torch.tensor(self.sizes)).long()
        self._cache: dict = {}

    @classmethod
    def fit(
        cls, x: Tensor, num_bands: int = 2, split: str = "dyadic", band_sizes: Sequence[int] | None = None
    ) -> PCATransform:
        """Fit on data x of shape (N, *shape). Bands: explicit `band_sizes`, or `num_bands` groups
        sized like dyadic wavelet levels (split="dyadic": D/4^(B-1), ...) or equal ("count")."""
        if x.dim() < 2 or x.shape[0] < 2:
            raise ValueError(f"PCATransform.fit needs a batch (N >= 2, *shape), got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("PCATransform.fit: the data contains NaN or Inf; clean the data first")
        shape = tuple(x.shape[1:])
        D = math.prod(shape)
        X = x.reshape(len(x), D).double()
        Xc = X - X.mean(0)
        cov = Xc.T @ Xc / (len(X) - 1)
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
        evecs = fix_signs(evecs)
        if band_sizes is None:
            band_sizes = split_sizes(D, num_bands, split, "PCATransform")
        return cls(evecs.contiguous(), evals.contiguous(), shape, band_sizes)

    _basis_for = Transform._basis_like

    def analyze(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x.reshape(len(x), -1) @ self._basis_for(x)

    def synthesize(self, c: Tensor) -> Tensor:
        return (c @ self._basis_for(c).T).reshape(len(c), *self.shape)

    def filter_many(self, x: Tensor, weights: Sequence[Tensor]) -> list[Tensor]:
        """Per-band weights skip the zero bands: the basis is dense (D x D), so a matmul over only
        the columns a sample needs is where the time goes. Samples are grouped by the contiguous
        range of bands any weight touches (on the path: bands up to the active one), and each
        weight is synthesised from its own band range (dx_k: the active band alone)."""
        self.check_input(x)
        B, N = self.num_bands, x.shape[0]
        if not all(w.shape[-1] == B and B != self.dim and w.dim() <= 2 for w in weights):
            return super().filter_many(x, weights)
        W = [w.to(x.dtype).expand(N, B) for w in weights]
        nz = torch.stack([w != 0 for w in W])  # (J, N, B)
        any_nz = nz.any(0)
        ar = torch.arange(B, device=x.device)
        lo = torch.where(any_nz, ar, B).min(1).values  # first band used per sample (B: none)
        hi = torch.where(any_nz, ar, -1).max(1).values
        start = torch.tensor([0, *self.sizes], device="cpu").cumsum(0).tolist()  # column range of each band
        X, U = x.reshape(N, -1), self._basis_for(x)
        outs = [torch.zeros_like(X) for _ in W]
        for key in torch.unique(lo * B + hi).tolist():
            a, b = divmod(key, B)
            if a >= B:  # every weight zero for these samples
                continue
            idx = torch.nonzero((lo == a) & (hi == b)).flatten()
            c = X[idx] @ U[:, start[a] : start[b + 1]]  # coefficients of bands a..b only
            for j, w in enumerate(W):
                used = nz[j][idx].any(0).nonzero().flatten()
                if len(used) == 0:
                    continue
                ja, jb = used.min().item(), used.max().item()
                cj = c[:, start[ja] - start[a] : start[jb + 1] - start[a]]
                wj = w[idx][:, ja : jb + 1].repeat_interleave(
                    torch.tensor(self.sizes[ja : jb + 1], device=x.device), dim=1
                )
                outs[j][idx] = (cj * wj) @ U[:, start[ja] : start[jb + 1]].T
        return [o.reshape(x.shape) for o in outs]

    # ---- files: safetensors for the tensors, JSON for the rest ---------------------------------
    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        from ..utils.atomic import atomic_write

        meta = {"shape": json.dumps(list(self.shape)), "band_sizes": json.dumps(self.sizes)}
        atomic_write(
            path,
            lambda tmp: save_file(
                {"basis": self.basis.contiguous(), "variance": self.variance}, str(tmp), metadata=meta
            ),
        )

    @classmethod
    def load(cls, path: str | Path) -> PCATransform:

        from ..utils.atomic import open_safetensors

        with open_safetensors(path) as f:
            meta = f.metadata() or {}
            if "shape" not in meta or "band_sizes" not in meta:
                raise ValueError(
                    f"{path} is not a kflow PCA basis (no shape/band_sizes metadata); refit with PCATransform.fit"
                )
            return cls(
                f.get_tensor("basis"),
                f.get_tensor("variance"),
                json.loads(meta["shape"]),
                json.loads(meta["band_sizes"]),
            )
