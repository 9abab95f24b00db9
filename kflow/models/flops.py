"""What a model costs, counted by torch.utils.flop_counter: FLOPs per sample at every stage of the
path, then per generated image (the model calls a sampler made) and per training image (the
stages the training k-density visits, forward and backward).

A staged model (models/staged.py) costs less in the early stages; a full-resolution model costs the
same at every k. Counting per stage once and multiplying by how often each stage is visited is
exact for both, without counting inside every call."""

from __future__ import annotations

from collections import Counter

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from ..utils.tensors import per_sample


def stage_points(path) -> list[float]:
    """One k inside each stage of the path (a full-resolution model: the same cost at each)."""
    try:
        starts = path.stage_starts().tolist() + [1.0]
    except ValueError:  # bands that do not start coarse to fine have no stages: one point
        return [0.5]
    return [(a + b) / 2 if b > a else a for a, b in zip(starts[:-1], starts[1:])]


def stage_of(model, path, k: Tensor) -> Tensor:
    """(N,) the stage whose cost a call at k pays."""
    if hasattr(model, "stage_of"):
        return model.stage_of(k)
    return torch.zeros(k.shape[0], dtype=torch.long, device=k.device)


def flops_per_stage(model, path, backward: bool = False) -> list[int]:
    """FLOPs of one sample's forward (and backward, for training) at each stage."""
    shape = tuple(path.transform.shape)
    p = next(model.parameters())
    points = stage_points(path) if hasattr(model, "stage_of") else [0.5]
    out = []
    for k in points:
        x = torch.randn(1, *shape, device=p.device, dtype=p.dtype, requires_grad=False)
        kk = torch.full((1,), k, device=p.device, dtype=p.dtype)
        with FlopCounterMode(display=False) as fc:
            if backward:
                model(x, kk).pow(2).mean().backward()
            else:
                with torch.no_grad():
                    model(x, kk)
        out.append(fc.get_total_flops())
    if backward:
        model.zero_grad(set_to_none=True)
    return out


class FlopTally:
    """model(x, k, y) that tallies the samples it sees per stage; `flops` is what they cost."""

    def __init__(self, model, path):
        self.model, self.path, self.seen = model, path, Counter()
        self._per_stage = None

    def __call__(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        kk = per_sample(k, x)
        self.seen.update(stage_of(self.model, self.path, kk).tolist())
        return self.model(x, k, y)

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    @property
    def flops(self) -> int:
        if self._per_stage is None:
            self._per_stage = flops_per_stage(self.model, self.path)
        return sum(n * self._per_stage[s] for s, n in self.seen.items())


def training_flops_per_image(model, path, k_density: str, stage_share=None, draws: int = 200_000) -> float:
    """Expected forward + backward FLOPs per training image under the k-density (Monte Carlo over
    `draws` values of k from a fixed seed), or under a staged model's train.stage_share (how often
    each stage is drawn). One stage per step (train.stage_batches=one) has the same expectation."""
    from ..path import draw_k

    per_stage = flops_per_stage(model, path, backward=True)
    if stage_share is not None and hasattr(model, "stage_of"):
        share = torch.as_tensor(stage_share, dtype=torch.float64)
        share = share / share.sum()
    else:
        k = draw_k(draws, k_density, torch.Generator().manual_seed(0), windows=path.windows())
        share = torch.bincount(stage_of(model, path, k.double()), minlength=len(per_stage)).double() / draws
    return float(sum(share[s] * f for s, f in enumerate(per_stage)))
