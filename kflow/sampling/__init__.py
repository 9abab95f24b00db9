from .grids import allocate_steps, band_grid, uniform_grid
from .sampler import SampleOutput, sample
from .solvers import SOLVERS, Solution, dopri5, euler, get_solver, heun, midpoint, rk4
from .wrappers import FromEndpoint, ModelVelocity, ProjectedVelocity

__all__ = [
    "euler",
    "heun",
    "midpoint",
    "rk4",
    "dopri5",
    "SOLVERS",
    "get_solver",
    "Solution",
    "uniform_grid",
    "band_grid",
    "allocate_steps",
    "FromEndpoint",
    "ModelVelocity",
    "ProjectedVelocity",
    "sample",
    "SampleOutput",
]
