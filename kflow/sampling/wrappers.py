"""Velocity wrappers: turn a model(x, k, y=None) into the velocity(x, k) a solver integrates."""

from __future__ import annotations

from torch import Tensor


class Counted:
    """A model or velocity that counts its calls (the one counter: solvers report NFE from it, the
    studio's progress bar reads it). `progress`, when given, is an object whose `done` is advanced
    too (one progress bar across several solves). Attributes (parameters, cfg) pass through."""

    def __init__(self, fn, progress=None):
        self.fn, self.progress, self.calls = fn, progress, 0

    def __call__(self, *args):
        self.calls += 1
        if self.progress is not None:
            self.progress.done += 1
        return self.fn(*args)

    def __getattr__(self, name: str):
        return getattr(self.fn, name)


class ModelVelocity:
    """Bind labels (or None) to a model; the model sees its own dtype."""

    def __init__(self, model, y: Tensor | None = None):
        self.model, self.y = model, y

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        return self.model(x, k, self.y)


class FromEndpoint:
    """A model(x, k, y) that predicts the endpoint x_1 as the velocity model(x, k, y) of the path
    towards it (KFlowPath.velocity_from_x1): the marginal velocity when the prediction is
    E[x_1 | x_k]. Endpoint models train with the loss on x_1; solvers and everything built on
    sample() see a velocity model."""

    def __init__(self, model, path):
        self.model, self.path = model, path

    def __call__(self, x: Tensor, k: Tensor, y: Tensor | None = None) -> Tensor:
        return self.path.velocity_from_x1(x, self.model(x, k, y), k)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


class ProjectedVelocity:
    """Keep only the active band of the velocity (the training target lives there alone)."""

    def __init__(self, velocity, path):
        self.velocity, self.path = velocity, path

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        return self.path.project(self.velocity(x, k), k)


class BoundaryNudge:
    """Evaluate the velocity a little inside the band when k sits exactly on a band boundary.

    x_k is continuous across a boundary but the target velocity jumps there (band p stops, band
    p + 1 starts), and a network with a smooth k-embedding answers with a blend of the two. Every
    band-aware grid starts a step on each boundary, so Euler would use that blend. Shifting the
    evaluation point by `fraction` of the new band's k-interval asks for the new band's velocity."""

    def __init__(self, velocity, path, fraction: float = 0.05):
        if not 0 < fraction < 1:
            raise ValueError(f"nudge fraction {fraction} must be in (0, 1)")
        self.velocity, self.path, self.fraction = velocity, path, fraction

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        edges = self.path.boundaries().to(device=k.device, dtype=k.dtype)
        start = edges[1:-1]  # interior boundaries (k = 0 has no previous segment to blend with)
        on = (k[:, None] - start[None, :]).abs() < 1e-6  # (N, M - 1)
        width = (edges[2:] - edges[1:-1])[None, :]
        shift = (on * width * self.fraction).sum(1)
        return self.velocity(x, k + shift)
