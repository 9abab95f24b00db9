"""The in-memory dataset every loader returns (images in [-1, 1], optional labels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..utils.errors import DataError


@dataclass
class ImageData:
    x: Tensor  # (N, C, H, W) float32 in [-1, 1]
    y: Tensor | None  # (N,) long
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.x)


# The one rule for arrays of images and labels, wherever they enter (training data, images to edit
# or restore, samples to score): integer images hold 0..255; float images hold the model's range
# [-1, 1], or [0, 1] when no value is negative (read as 0..1 and mapped to [-1, 1]); labels are
# integers 0..C-1. Anything else is refused in one line: never guessed.
def to_uint8(x: Tensor) -> np.ndarray:
    """Images (N, C, H, W) in [-1, 1] -> uint8 0..255 of the same layout (the inverse of from_uint8)."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def from_uint8(a) -> Tensor:
    """uint8 (or integer 0..255) images -> float32 in [-1, 1], the model's range."""
    a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
    return torch.from_numpy(a.astype(np.float32)) / 127.5 - 1


def images_to_model_range(a, source: str) -> Tensor:
    """(N, C, H, W) array -> float32 tensor in [-1, 1] by the rule above."""
    a = np.asarray(a)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DataError(f"{source}: images of dtype {a.dtype}; give uint8 (0..255) or float ([-1, 1] or [0, 1]) arrays")
    if a.size == 0:
        return torch.from_numpy(a.astype(np.float32))
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{source}: integer images must hold 0..255, these hold {lo}..{hi}; rescale them")
        return from_uint8(a)
    if not np.isfinite(a).all():
        raise DataError(f"{source} contains NaN or Inf values; clean the data first")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1 - 1e-6 or hi > 1 + 1e-6:
        raise DataError(
            f"{source}: float images must lie in [-1, 1] (or [0, 1]), these span {lo:.4g}..{hi:.4g}; "
            "save 0..255 images as uint8, or rescale"
        )
    x = torch.from_numpy(a.astype(np.float32))
    return x * 2 - 1 if lo >= 0 else x.clamp(-1, 1)


def labels_to_long(y, n: int, source: str) -> Tensor:
    """(N,) integer class labels 0..C-1 -> long tensor; floats only when every value is integral."""
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise DataError(f"{source}: {len(y)} labels for {n} images")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise DataError(f"{source}: labels must be whole class numbers 0..C-1; some are not integers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels of dtype {y.dtype}; give integers 0..C-1")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise DataError(
            f"{source}: labels must be 0..C-1, found {int(y.min())}; "
            "for an unconditional model leave the labels out or set data.labels=false"
        )
    return torch.from_numpy(y)
