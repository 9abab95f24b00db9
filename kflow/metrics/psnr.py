"""Peak signal-to-noise ratio, the pixel-fidelity score of editing reconstructions and restorations."""

from __future__ import annotations

import torch
from torch import Tensor


def psnr(x: Tensor, ref: Tensor, data_range: float = 2.0) -> Tensor:
    """Per-image PSNR in dB for images in [-1, 1] (data range 2)."""
    mse = (x - ref).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)
