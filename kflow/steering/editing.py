"""Band editing of real images: integrate the ODE backwards (k = 1 -> 0) to recover the noise an
image comes from, change chosen bands of that noise, and integrate forward again.

Bands kept from the recovered noise keep what they generate (in K-Flow, the coarse bands carry
layout and class); redrawn bands are generated anew, conditioned on the kept ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..sampling import get_solver
from ..sampling.noise import draw_x0
from ..sampling.sampler import make_grid
from ..sampling.wrappers import ModelVelocity
from .noise import mix_bands

DIRECTIONS = ("forward", "backward")


@torch.no_grad()
def transport(
    model, path, x: Tensor, direction: str, steps: int = 50, solver: str = "rk4", y: Tensor | None = None
) -> Tensor:
    """Integrate the model's ODE over the band grid: 'forward' takes noise x_0 to its image x_1,
    'backward' walks the same grid from 1 to 0 and recovers the noise an image comes from."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction={direction!r}: use one of {', '.join(DIRECTIONS)}")
    grid = make_grid(path, steps, "band", solver=solver)
    return get_solver(solver)(ModelVelocity(model, y), x, grid if direction == "forward" else grid.flip(0)).x


def invert(model, path, x_1: Tensor, steps: int = 50, solver: str = "rk4", y: Tensor | None = None) -> Tensor:
    """The noise x_0 whose forward ODE solution is x_1."""
    return transport(model, path, x_1, "backward", steps, solver, y)


def integrate(model, path, x_0: Tensor, steps: int = 50, solver: str = "rk4", y: Tensor | None = None) -> Tensor:
    """The image x_1 the noise x_0 flows to."""
    return transport(model, path, x_0, "forward", steps, solver, y)


@dataclass
class EditOutput:
    x: Tensor  # (N, *shape) the edited images
    x_0: Tensor  # (N, *shape) the noise recovered from the inputs
    x_0_edited: Tensor  # (N, *shape) the noise the edits were generated from
    reconstruction: Tensor  # (N, *shape) forward pass of the unedited recovered noise


def edit_bands(
    model,
    path,
    x_1: Tensor,
    keep_bands: Sequence[int],
    seed: int = 0,
    steps: int = 50,
    solver: str = "rk4",
    y: Tensor | None = None,
    donor: Tensor | None = None,
) -> EditOutput:
    """Keep the recovered noise on keep_bands; the other bands get fresh noise (seed) or, when a
    donor batch of images is given, the donor's recovered noise (a band swap)."""
    T = path.transform
    x_0 = invert(model, path, x_1, steps, solver, y)
    if donor is not None:
        if donor.shape != x_1.shape:
            raise ValueError(f"donor batch {tuple(donor.shape)} must match the images {tuple(x_1.shape)}")
        other = invert(model, path, donor, steps, solver, y)
    else:
        other = draw_x0(len(x_1), x_1.shape[1:], seed, x_1.dtype).to(x_1.device)
    x_0_edited = T.synthesize(mix_bands(T, T.analyze(x_0), T.analyze(other), keep_bands))
    return EditOutput(
        x=integrate(model, path, x_0_edited, steps, solver, y),
        x_0=x_0,
        x_0_edited=x_0_edited,
        reconstruction=integrate(model, path, x_0, steps, solver, y),
    )
