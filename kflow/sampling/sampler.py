"""Generate samples: draw x_0, integrate the velocity from k = 0 to 1 on a (band-aware) grid."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .grids import band_grid, uniform_grid
from .noise import draw_x0
from .solvers import ADAPTIVE, get_solver
from .wrappers import ModelVelocity, ProjectedVelocity

GRIDS = ("band", "band_logit", "uniform")


@dataclass
class SampleOutput:
    x: Tensor  # (N, *shape) generated samples (k = 1)
    x_0: Tensor  # (N, *shape) the noise they came from
    nfe: int  # velocity evaluations per sample
    band_states: Tensor | None  # (M + 1, N, *shape): x_k at each of path.boundaries() (band grid only)


def make_grid(path, steps: int, grid: str = "band", step_allocation="length", solver: str = "euler") -> Tensor:
    """grid='band': boundaries on band edges, steps per band by `step_allocation` ('length',
    'equal' or per-band weights); 'band_logit': the same boundaries and step counts, the steps inside
    each segment at logit-normal quantiles (matching k_density=window_logit_normal); grid='uniform':
    equal steps in k. An adaptive solver (dopri5) gets only its restarts: the band boundaries, or
    [0, 1] on the uniform grid; `steps` is then ignored."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; use one of {', '.join(GRIDS)}")
    if solver in ADAPTIVE:
        return path.boundaries() if grid != "uniform" else torch.tensor([0.0, 1.0], dtype=torch.float64)
    if grid == "uniform":
        return uniform_grid(steps)
    return band_grid(path, steps, step_allocation, "uniform" if grid == "band" else "logit_normal")


@torch.no_grad()
def sample(
    model,
    path,
    n: int,
    *,
    solver: str = "euler",
    steps: int = 50,
    grid: str = "band",
    project: bool = False,
    y: Tensor | None = None,
    seed: int = 0,
    x_0: Tensor | None = None,
    device=None,
    dtype=torch.float32,
    batch_size: int = 500,
    record_bands: bool = False,
    velocity_for=None,
    step_allocation="length",
) -> SampleOutput:
    """`velocity_for` (labels (N,) or None -> a velocity(x, k) built from the model, e.g. guidance)
    replaces ModelVelocity."""
    shape = tuple(path.transform.shape)
    device = device or next(model.parameters()).device
    if x_0 is None:
        x_0 = draw_x0(n, shape, seed, dtype)
    if y is not None and len(y) != n:
        raise ValueError(f"{len(y)} labels given for {n} samples")
    solve = get_solver(solver)
    ks = make_grid(path, steps, grid, step_allocation, solver)
    edges = path.boundaries().tolist()
    marks = {i: edges.index(kk) for i, kk in enumerate(ks[1:].tolist()) if kk in edges}  # step -> boundary
    outs, states, nfe = [], [], 0
    for i in range(0, n, batch_size):
        xb = x_0[i : i + batch_size].to(device)
        yb = None if y is None else y[i : i + batch_size].to(device)
        v = velocity_for(yb) if velocity_for is not None else ModelVelocity(model, yb)
        if project:
            v = ProjectedVelocity(v, path)
        recorded = {0: xb.cpu()} if record_bands else None

        def cb(step, recorded=recorded):
            if recorded is not None and step.i in marks:
                recorded[marks[step.i]] = step.x_next.cpu()

        sol = solve(v, xb, ks, callback=cb)
        nfe = sol.nfe
        outs.append(sol.x.cpu())
        if record_bands:
            if len(recorded) != len(edges):
                raise ValueError("record_bands needs a grid that hits every band boundary (grid='band')")
            states.append(torch.stack([recorded[j] for j in range(len(edges))]))
    return SampleOutput(x=torch.cat(outs), x_0=x_0, nfe=nfe, band_states=torch.cat(states, 1) if record_bands else None)
