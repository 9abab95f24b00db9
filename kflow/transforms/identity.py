"""One band, F = I: the K-Flow path becomes plain (rectified) flow matching."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import Transform


class IdentityTransform(Transform):
    name = "identity"

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(s) for s in shape)
        self.bands = torch.zeros(self.dim, dtype=torch.long)

    def analyze(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return x.reshape(len(x), -1)

    def synthesize(self, c: Tensor) -> Tensor:
        return c.reshape(len(c), *self.shape)

    # per-band weights are one scalar per sample: no transform at all
    def _to_native(self, x):
        return x

    def _from_native(self, x):
        return x

    def _scale_native(self, x, band_weights):
        return x * band_weights.reshape(-1, *([1] * (x.dim() - 1))) if band_weights.dim() == 2 else x * band_weights

    # one band: its only stage is the sample itself
    def stage_shape(self, s: int) -> tuple[int, ...]:
        self.check_stage(s)
        return tuple(self.shape)

    def to_stage(self, x: Tensor, s: int) -> Tensor:
        self.check_stage(s)
        return x

    def from_stage(self, z: Tensor, s: int) -> Tensor:
        self.check_stage(s)
        return z
