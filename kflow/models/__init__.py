"""Backbones sharing one interface: model(x, k, y=None) -> velocity, k in [0, 1]."""

from __future__ import annotations

from .dit import DiT, DiTConfig
from .unet import UNet, UNetConfig

MODELS = ("unet", "dit")
# staged models: one backbone for every stage, one per stage, or the coarse stage's own and one shared
# by the finer stages (which see the same image statistics, and together more of every batch)
STAGE_WEIGHTS = ("shared", "own", "coarse")
# the network at full resolution, at its stage's (models/staged.py), or at its stage's in the coarse
# stage only (the finer stages at full resolution)
RESOLUTIONS = ("full", "stage", "coarse")
# where a smaller stage image enters a backbone shared with larger ones: its first layer, or the UNet
# level of its size (models/unet.py entry_levels)
STAGE_ENTRIES = ("input", "level")
# how a staged model runs the backbones of a mixed training batch: one after another, or side by side
# on CPU threads, forward and backward (models/staged.py)
STAGE_CALLS = ("serial", "threads")
K_EMBEDDINGS = ("k", "band", "window")  # sinusoids of k; + one-hot of the band position; + per-band local times

__all__ = ["MODELS", "K_EMBEDDINGS", "UNet", "UNetConfig", "DiT", "DiTConfig", "build_model"]


def build_model(name: str, cfg):
    if name == "unet":
        return UNet(cfg)
    if name == "dit":
        return DiT(cfg)
    raise ValueError(f"unknown model {name!r}; use 'unet' or 'dit'")
