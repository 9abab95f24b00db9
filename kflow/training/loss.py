"""Conditional flow matching on a K-Flow path: || v(x_k, k, y) - dx_k ||^2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..path import KFlowPath


@dataclass
class LossOutput:
    loss: Tensor  # scalar, the optimised quantity
    per_sample: Tensor  # (N,) unweighted mean squared error
    band: Tensor  # (N,) active band of each sample


def interval_weights(path: KFlowPath) -> Tensor:
    """(B,) per-band weights (B * dk_b)^2, dk_b the band's k-interval. The target on band b scales as
    1 / dk_b, so with unequal intervals (allocation='energy') a band squeezed into 4% of k would carry
    ~600x the loss of one spread over 90%; these weights undo that (all 1 for uniform allocation)."""
    iv = path.windows()
    dk = iv[:, 1] - iv[:, 0]
    return (path.num_bands * dk).pow(2).float()


class FlowMatchingLoss:
    """Callable loss. band_weights scale each sample's error by the weight of its active band:
    None (all 1), 'interval' (see interval_weights) or one number per band.

    cond_aug > 0 is conditioning augmentation (cascaded diffusion's remedy for exposure bias): the
    network's input gets Gaussian noise of that std on the bands already finished at k, so it learns
    to continue from imperfect coarse content like its own, not only from exact data. The target is
    unchanged: the velocity of the clean path."""

    def __init__(self, path: KFlowPath, band_weights: Sequence[float] | str | None = None, cond_aug: float = 0.0):
        if not cond_aug >= 0:
            raise ValueError(f"cond_aug={cond_aug} must be >= 0 (std of the noise on finished bands)")
        self.path = path
        self.cond_aug = float(cond_aug)
        if isinstance(band_weights, str):
            if band_weights != "interval":
                raise ValueError(f"band_loss_weights={band_weights!r}: use 'interval' or one weight per band")
            band_weights = interval_weights(path)
        if band_weights is not None and len(band_weights) != path.num_bands:
            raise ValueError(f"band_loss_weights has {len(band_weights)} entries for {path.num_bands} bands")
        self.band_weights = None if band_weights is None else torch.as_tensor(band_weights, dtype=torch.float32)

    def __call__(self, model, x_1: Tensor, x_0: Tensor, k: Tensor, y: Tensor | None = None) -> LossOutput:
        # the path in float32 even under autocast: in bf16 a transform's matmul or convolution
        # (PCA, wavelet) would round the targets to ~3 digits, while FM's arithmetic stays exact
        with torch.autocast(x_1.device.type, enabled=False):
            s = self.path.sample(x_0, x_1, k)
            x_in = s.x_k
            if self.cond_aug > 0:
                done = self.path.finished(s.k).to(x_in.dtype)  # (N, B)
                x_in = x_in + self.path.transform.filter(self.cond_aug * torch.randn_like(x_in), done)
        v = model(x_in, s.k, y)
        err = (v.float() - s.dx_k.float()).pow(2).flatten(1).mean(1)
        w = err if self.band_weights is None else err * self.band_weights.to(err.device)[s.band]
        return LossOutput(loss=w.mean(), per_sample=err.detach(), band=s.band)
