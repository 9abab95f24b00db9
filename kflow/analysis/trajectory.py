"""What a sampler does band by band: record an Euler trajectory, then measure per-band energy of
the state x_k and of the model's current estimate of the final sample, and how low-dimensional
each step's batch is (the paper's Fig. 4 projection ratio)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..path import KFlowPath
from ..sampling.solvers import euler
from ..transforms.base import Transform


@dataclass
class Trajectory:
    k: Tensor  # (T + 1,) float64 grid, k[0] = 0, k[-1] = 1
    x: Tensor  # (T + 1, N, *shape) states x_k on the grid (x[0] = x_0, x[-1] = the sample)
    v: Tensor  # (T, N, *shape) velocity evaluated at (x[i], k[i]), the Euler step's slope


@torch.no_grad()
def trace(velocity, grid: Tensor, x_0: Tensor) -> Trajectory:
    """The Euler solver over `grid` from x_0, keeping every state and slope (on CPU) from its
    callback. The last grid point's velocity is never needed, so it is not evaluated."""
    grid = torch.as_tensor(grid, dtype=torch.float64)
    xs, vs = [x_0.cpu()], []

    def keep(step):
        xs.append(step.x_next.cpu())
        vs.append(step.v.cpu())

    euler(velocity, x_0, grid, callback=keep)
    return Trajectory(k=grid, x=torch.stack(xs), v=torch.stack(vs))


def final_estimate(path: KFlowPath, x_k: Tensor, v: Tensor, k: float, eps: float = 1e-3) -> Tensor:
    """The path's one-step extrapolation of the final sample from (x_k, v) at k
    (`KFlowPath.x1_estimate`): finished bands kept, moving bands extrapolated, bands not started 0;
    NaN where a started band's bump is flat (mu' < eps), which settle_k skips."""
    return path.x1_estimate(x_k, v, torch.full((x_k.shape[0],), float(k), dtype=x_k.dtype), flat="nan", eps=eps)


def band_energy_curve(transform: Transform, xs: Tensor) -> Tensor:
    """(T, B) float64: mean squared coefficient mass per band of each (N, *shape) batch in xs."""
    return torch.stack([transform.band_energy(x.double()) for x in xs])


def estimate_curve(path: KFlowPath, traj: Trajectory) -> Tensor:
    """(T, N, *shape): the final-sample estimate at every grid point but the last."""
    return torch.stack(
        [final_estimate(path, traj.x[i].double(), traj.v[i].double(), traj.k[i].item()) for i in range(len(traj.v))]
    )


def projection_ratio(x: Tensor, rank: int = 2) -> Tensor:
    """Share of a batch's energy kept by its top-`rank` principal components (paper Fig. 4):
    1 - ||x - proj(x)||^2 / ||x||^2 summed over the batch, with proj onto the affine subspace through
    the batch mean spanned by the leading principal directions. x: (N, *shape) -> scalar float64."""
    x = x.reshape(x.shape[0], -1).double()
    mean = x.mean(0, keepdim=True)
    xc = x - mean
    _, _, vh = torch.linalg.svd(xc, full_matrices=False)
    top = vh[:rank]  # (rank, D)
    resid = xc - (xc @ top.T) @ top
    return 1 - resid.pow(2).sum() / x.pow(2).sum()


def settle_k(k: Tensor, rel: Tensor, tol: float = 0.1) -> float:
    """Smallest grid k from which rel (a curve relative to its final value) stays within 1 +- tol;
    for a curve rising from 0 this is where it reaches 90% of its final energy for good."""
    keep = ~rel.isnan()  # undefined estimates (flat bump starts) say nothing
    k, rel = k[keep], rel[keep]
    ok = (rel - 1).abs() <= tol
    bad = torch.nonzero(~ok).flatten()
    i = 0 if len(bad) == 0 else bad[-1].item() + 1
    return float(k[i]) if i < len(k) else float("nan")
