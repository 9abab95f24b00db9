"""Velocity wrappers: turn a model(x, k, y=None) into the velocity(x, k) a solver integrates."""
from __future__ import annotations

import torch
from torch import Tensor


class ModelVelocity:
    """Bind labels (or None) to a model; the model sees its own dtype."""

    def __init__(self, model, y: Tensor | None = None):
        self.model, self.y = model, y

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        return self.model(x, k, self.y)


class ProjectedVelocity:
    """Keep only the active band of the velocity (the training target lives there alone)."""

    def __init__(self, velocity, path):
        self.velocity, self.path = velocity, path

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        return self.path.project(self.velocity(x, k), k)
