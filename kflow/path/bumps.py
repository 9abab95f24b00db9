"""Bumps mu: [0, 1] -> [0, 1], mu(0) = 0, mu(1) = 1, and their derivatives."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def linear(t: Tensor) -> tuple[Tensor, Tensor]:
    return t, torch.ones_like(t)


def cosine(t: Tensor) -> tuple[Tensor, Tensor]:
    return (1 - torch.cos(math.pi * t)) / 2, math.pi / 2 * torch.sin(math.pi * t)


def smoothstep(t: Tensor) -> tuple[Tensor, Tensor]:
    return t * t * (3 - 2 * t), 6 * t * (1 - t)


BUMPS = {"linear": linear, "cosine": cosine, "smoothstep": smoothstep}


def get_bump(name: str):
    if name not in BUMPS:
        raise ValueError(f"unknown bump {name!r}; use one of {', '.join(BUMPS)}")
    return BUMPS[name]
