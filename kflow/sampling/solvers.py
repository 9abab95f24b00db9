"""Stateless ODE solvers sharing one signature (k-diffusion style):

    solver(velocity, x, grid, callback=None) -> Solution

velocity(x, k) -> dx/dk with k of shape (N,); grid is an increasing (sampling) or decreasing
(inversion) 1D tensor of k values. callback(Step) after every step sees the state before and
after and the velocity at the step's start (as k-diffusion's callback sees its denoised estimate),
so trajectories and analyses reuse the solvers instead of re-implementing a step. Guidance,
conditioning and band projection are wrappers around `velocity`, never inside a solver. A stage
that lands on a step's end is evaluated one ulp inside the step, and so is the start of a step taken
backwards (a band's window is closed at its start), so on band-aware grids each step only sees its
own band in either direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..utils.tensors import append_dims
from .wrappers import Counted

Velocity = Callable[[Tensor, Tensor], Tensor]


@dataclass
class Solution:
    x: Tensor  # final state (N, *shape)
    nfe: int  # velocity evaluations per sample
    grid: Tensor  # the k values visited


@dataclass
class Step:
    i: int  # step index
    k: Tensor  # (N,) k at the step's start
    k_next: Tensor  # (N,) k at its end
    x: Tensor  # (N, *shape) the state at k
    v: Tensor  # (N, *shape) the velocity at (x, k), the step's first evaluation
    x_next: Tensor  # (N, *shape) the state at k_next


class _FirstStage:
    """Remembers the velocity of a step's first evaluation (for the callback)."""

    def __init__(self, velocity):
        self.velocity, self.first = velocity, None

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        v = self.velocity(x, k)
        if self.first is None:
            self.first = v
        return v


def _k(value, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


def _inside(k_end: Tensor, k_start: Tensor) -> Tensor:
    return torch.nextafter(k_end, k_start)


def integrate(step, velocity, x, grid, callback=None) -> Solution:
    """The one integration loop: x_next = step(velocity, x, k0, k1) over consecutive grid points.
    Every solver below and restoration's consistency step are a `step`; the loop counts
    evaluations and calls callback(Step) after each step."""
    v = Counted(velocity)
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if grid.dim() != 1 or len(grid) < 2:
        raise ValueError("grid must be a 1D tensor of at least two k values")
    for i in range(len(grid) - 1):
        k0, k1 = _k(grid[i], x), _k(grid[i + 1], x)
        if grid[i + 1] < grid[i]:  # backwards, a step starting on a boundary evaluates on its own side
            k0 = _inside(k0, k1)
        first = _FirstStage(v)
        x_next = step(first, x, k0, k1)
        if callback is not None:
            callback(Step(i, k0, k1, x, first.first, x_next))
        x = x_next
    return Solution(x=x, nfe=v.calls, grid=grid)


@torch.no_grad()
def euler(velocity: Velocity, x: Tensor, grid: Tensor, callback=None) -> Solution:
    def step(v, x, k0, k1):
        return x + append_dims(k1 - k0, x.dim()) * v(x, k0)

    return integrate(step, velocity, x, grid, callback)


@torch.no_grad()
def midpoint(velocity: Velocity, x: Tensor, grid: Tensor, callback=None) -> Solution:
    def step(v, x, k0, k1):
        h = append_dims(k1 - k0, x.dim())
        return x + h * v(x + h / 2 * v(x, k0), (k0 + k1) / 2)

    return integrate(step, velocity, x, grid, callback)


@torch.no_grad()
def heun(velocity: Velocity, x: Tensor, grid: Tensor, callback=None) -> Solution:
    def step(v, x, k0, k1):
        h = append_dims(k1 - k0, x.dim())
        d0 = v(x, k0)
        d1 = v(x + h * d0, _inside(k1, k0))
        return x + h / 2 * (d0 + d1)

    return integrate(step, velocity, x, grid, callback)


@torch.no_grad()
def rk4(velocity: Velocity, x: Tensor, grid: Tensor, callback=None) -> Solution:
    def step(v, x, k0, k1):
        h = append_dims(k1 - k0, x.dim())
        km = (k0 + k1) / 2
        d1 = v(x, k0)
        d2 = v(x + h / 2 * d1, km)
        d3 = v(x + h / 2 * d2, km)
        d4 = v(x + h * d3, _inside(k1, k0))
        return x + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)

    return integrate(step, velocity, x, grid, callback)


@torch.no_grad()
def dopri5(
    velocity: Velocity, x: Tensor, grid: Tensor, callback=None, rtol: float = 1e-5, atol: float = 1e-5
) -> Solution:
    """Adaptive Dormand-Prince (torchdiffeq) on each segment of `grid` separately, so that a
    band-aware grid keeps band boundaries as hard restarts (the velocity may jump there)."""
    try:
        from torchdiffeq import odeint
    except ImportError as e:
        raise ImportError("dopri5 needs torchdiffeq: pip install 'kflow[ode]'") from e

    def step(v, x, k0, k1):
        lo, hi = k0[0], k1[0]
        end = _inside(hi, lo)  # never evaluated on the next segment's side of its end

        def f(k, y):
            kk = torch.minimum(k.to(y.dtype), end) if hi > lo else torch.maximum(k.to(y.dtype), end)
            return v(y, kk.expand(y.shape[0]))

        return odeint(f, x, torch.stack([lo, hi]), rtol=rtol, atol=atol, method="dopri5")[-1]

    return integrate(step, velocity, x, grid, callback)


SOLVERS = {"euler": euler, "heun": heun, "midpoint": midpoint, "rk4": rk4, "dopri5": dopri5}
# velocity evaluations per step of the fixed-step solvers (dopri5 adapts: not known in advance)
EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
ADAPTIVE = ("dopri5",)  # its grid only marks restarts (the band boundaries)


def get_solver(name: str):
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; use one of {', '.join(SOLVERS)}")
    return SOLVERS[name]
