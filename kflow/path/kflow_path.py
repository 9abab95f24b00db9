"""The K-Flow path (docs/maths.md: the paper's Eq. 9-11, corrected), with per-band k-windows.

Each band b moves on its own window [s_b, e_b] of k: with local time t_b = clip((k - s_b) /
(e_b - s_b), 0, 1) its amplitude is a_b(k) = mu(t_b) (0 before the window, 1 after), and

    x_k  = x_0 + P(a) (x_1 - x_0)        P(a) = F^T diag(a) F
    dx_k = P(a') (x_1 - x_0)             a'_b = mu'(t_b) / (e_b - s_b) inside the window, else 0

The band schedule (windows, bump, stages: path/schedule.py) is the path's own object; with
overlap 1 every band sits on [0, 1], which is plain flow matching for any transform
(P(mu(k) 1) = mu(k) I). One band with the identity transform is rectified flow:
x_k = k x_1 + (1 - k) x_0.

Samplers, steering, restoration and analysis ask the path (which answers the schedule's questions
too: windows, amplitudes, started, stage, ...); none reads kappa or the bump. The path adds what
needs the transform: x_k and its velocity, the final-sample estimate, band projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..transforms.base import Transform
from ..utils.tensors import per_sample
from .schedule import BandSchedule

FLAT_BUMP_RULES = ("nan", "keep")  # x1_estimate on a started band whose bump is flat (mu' ~ 0)


_SCHEDULE_NAMES = frozenset(
    "num_bands bump bump_name order allocation kappa overlap band_of_position position_of_band windows "
    "boundaries started finished moving local_time amplitudes position_starts stage_starts stage "
    "active_position active_band".split()
)


@dataclass
class PathSample:
    x_k: Tensor  # (N, *shape) point on the path
    dx_k: Tensor  # (N, *shape) velocity d x_k / d k, the regression target
    k: Tensor  # (N,)
    band: Tensor  # (N,) long, the band being generated at k


class KFlowPath:
    """x_k and dx_k for a transform and a band schedule. Give the schedule, or the keywords that
    build one (BandSchedule's: bump, allocation, order, energy, overlap, windows)."""

    def __init__(self, transform: Transform, schedule: BandSchedule | None = None, **schedule_kw):
        self.transform = transform
        if schedule is None:
            schedule = BandSchedule(transform.num_bands, **schedule_kw)
        elif schedule_kw:
            raise ValueError(f"give a schedule or its keywords ({', '.join(schedule_kw)}), not both")
        if schedule.num_bands != transform.num_bands:
            raise ValueError(f"the schedule has {schedule.num_bands} bands but the transform {transform.num_bands}")
        self.schedule = schedule

    def __getattr__(self, name: str):
        # the schedule's numbers and questions (windows, amplitudes, started, stage, kappa, ...) are
        # the path's: callers ask the path, the schedule answers
        if name in _SCHEDULE_NAMES:
            return getattr(self.schedule, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def x1_estimate(self, x_k: Tensor, v: Tensor, k: Tensor, flat: str = "nan", eps: float = 1e-3) -> Tensor:
        """The final sample x_1 that (x_k, v) point to, band by band (exact for the conditional
        velocity). Per band c_k = c_0 + a (c_1 - c_0) and v = a' (c_1 - c_0), so
        c_1 = c_k + (1 - a) / a' v: finished bands keep c_k, moving bands extrapolate (for one band,
        linear bump: FM's x_k + (1 - k) v), bands not started yet hold noise the velocity says
        nothing about: 0. Where a started band's a' < eps (a flat bump's start), `flat` decides:
        'nan' marks the estimate undefined, 'keep' keeps c_k there (no extrapolation).
        x_k, v: (N, *shape); k: (N,) or a scalar."""
        if flat not in FLAT_BUMP_RULES:
            raise ValueError(f"flat={flat!r}: use one of {', '.join(FLAT_BUMP_RULES)}")
        k = per_sample(k, x_k)
        a, da = self.amplitudes(k)
        started, finished = self.started(k), self.finished(k)
        steep = da > eps
        gain = torch.where(steep & ~finished, (1 - a) / da.clamp_min(eps), torch.zeros_like(a))
        keep = started.to(a.dtype)
        if flat == "nan":
            undefined = started & ~finished & ~steep
            keep = torch.where(undefined, torch.full_like(a, float("nan")), keep)
        return self.transform.filter(x_k, keep) + self.transform.filter(v, gain)

    def velocity_from_x1(self, x_k: Tensor, x1_hat: Tensor, k: Tensor, eps: float = 1e-3) -> Tensor:
        """The velocity at (x_k, k) of the path towards the endpoint x1_hat: the inverse of x1_estimate
        on the moving bands. Per band c_1 - c_k = (1 - a)(c_1 - c_0) and v = a' (c_1 - c_0), so
        v = a' / (1 - a) (c_1 - c_k); zero on bands not moving. With x1_hat = E[x_1 | x_k] this is the
        marginal velocity (it is linear in x_1), which is what endpoint-predicting networks sample
        with. 1 - a is clamped at eps: at a band's end the data term is all that is left.
        x_k, x1_hat: (N, *shape); k: (N,) or a scalar."""
        k = per_sample(k, x_k)
        a, da = self.amplitudes(k)
        gain = torch.where(self.moving(k), da / (1 - a).clamp_min(eps), torch.zeros_like(da))
        return self.transform.filter(x1_hat - x_k, gain)

    def sample(self, x_0: Tensor, x_1: Tensor, k: Tensor) -> PathSample:
        if x_0.shape != x_1.shape:
            raise ValueError(f"x_0 {tuple(x_0.shape)} and x_1 {tuple(x_1.shape)} must have the same shape")
        k = per_sample(k, x_1)
        a, da = self.amplitudes(k)
        diff = x_1 - x_0
        pa, pda = self.transform.filter_many(diff, [a, da])
        return PathSample(x_k=x_0 + pa, dx_k=pda, k=k, band=self.active_band(k))

    def project(self, v: Tensor, k: Tensor) -> Tensor:
        """Keep only the moving bands of a velocity v (N, *shape) at k (N,): where the target lives."""
        k = per_sample(k, v)
        return self.transform.filter(v, self.moving(k).to(v.dtype))
