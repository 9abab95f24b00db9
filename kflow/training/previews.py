"""The sample grid a training run writes as it goes (samples/step_*.png, final.png): the run's
sample settings, one class per column for class-conditional runs, a fixed seed so that grids of
different steps show the same noise."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..sampling.sampler import sample
from ..steering.guidance import classes_in_turn, guided

PREVIEW_SEED = 1234


@torch.no_grad()
def preview_grid(model, path, s, num_classes: int, to_image, device) -> Tensor | None:
    """(num_grid, C, H, W) images in [-1, 1] sampled with SampleConfig `s`, or None when not finite."""
    y = classes_in_turn(s.num_grid, num_classes)
    velocity = guided(model, y, s.guidance, s.keep_class_until) if y is not None else None
    how = dict(solver=s.solver, steps=s.steps, grid=s.grid, project=s.project, step_allocation=s.step_allocation)
    out = sample(model, path, s.num_grid, y=y, seed=PREVIEW_SEED, device=device, velocity_for=velocity, **how)
    if not torch.isfinite(out.x).all():
        return None
    return to_image(out.x)


def save_preview(images: Tensor, png: Path) -> Path:
    from ..viz.images import save_image_grid

    return save_image_grid(images, png)
