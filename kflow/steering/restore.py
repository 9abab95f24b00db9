"""Training-free restoration with an unconditional K-Flow (or FM) model.

A linear degradation y = A x_1 + noise observes some directions of the image. While sampling,
at every step the model's estimate of the final sample is made consistent with y,

    x1_hat <- x1_hat + (A P_S)^+ (y - A x1_hat)    (a pseudo-inverse, regularised for noise)

with P_S the projection on the bands started so far (all of them for FM, where this is A^+),
and the state moves toward that estimate only on the bands the path has reached: finished bands
take the corrected estimate, the active band moves along its bump toward it, bands not started
keep their noise. When A observes whole bands exactly (box downsampling with the Haar wavelet:
the coarse levels), the observed bands are simply held to the observation and only the others
are generated. With one band (FM) this is a projection method on the flow (DDNM-style).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..path import KFlowPath
from ..sampling.noise import draw_x0
from ..sampling.sampler import make_grid
from ..sampling.solvers import integrate
from ..sampling.wrappers import ModelVelocity
from .degradations import Degradation


@dataclass
class RestoreOutput:
    x: Tensor  # (N, *shape) restorations
    nfe: int


@torch.no_grad()
def restore(
    model, path: KFlowPath, y: Tensor, A: Degradation, steps: int = 50, seed: int = 0, eps: float = 1e-3
) -> RestoreOutput:
    """Sample from noise with band-by-band measurement consistency (module docstring).

    Each step: the model's estimate of the final sample on the finished and active bands, made
    consistent with y; finished bands take it; the active band moves along its bump toward it
    with the exact path update c' = c1 + (1 - mu(t1)) / (1 - mu(t0)) (c - c1) (the estimate held
    over the step; for FM this is the usual x' = x1 + (1 - k1) / (1 - k0) (x - x1))."""
    T = path.transform
    M = A.matrix.to(torch.float32)  # (m, D)
    pinvs = {}  # the correction's pseudo-inverse, per set of started bands
    yf = y.flatten(1).float()

    def step(velocity, x, k0, k1):
        x1 = path.x1_estimate(x, velocity(x, k0), k0, flat="keep", eps=eps)  # no estimate where the bump is flat
        started = path.started(k0[:1])[0]  # (B,)
        key = tuple(started.tolist())
        if key not in pinvs:  # the operator seen through the started bands: M P_S
            rows = A.matrix.reshape(-1, *A.shape)
            pinvs[key] = A.pinv(T.filter(rows, started.to(rows.dtype)).flatten(1)).to(torch.float32)
        # measurement consistency with the smallest change on the started bands only: corrections in
        # bands not started yet would be dropped, and pixel-space ones (A^+) put block edges into
        # finished bands that no later step removes (speckled x4 super-resolution)
        x1 = x1 + ((yf - x1.flatten(1) @ M.T) @ pinvs[key].T).reshape(x.shape)
        # per band: not started keeps its noise; settled takes x1; moving follows its bump toward x1
        a0, a1 = path.amplitudes(k0[:1])[0][0], path.amplitudes(k1[:1])[0][0]  # (B,)
        r = torch.where(started & (a0 < 1), (1 - a1) / (1 - a0).clamp_min(1e-12), torch.zeros_like(a0))
        r = torch.where(started, r, torch.ones_like(r))
        return T.filter(x, r) + T.filter(x1, 1 - r)

    x_0 = draw_x0(len(y), A.shape, seed)
    sol = integrate(step, ModelVelocity(model, None), x_0, make_grid(path, steps, "band"))
    return RestoreOutput(x=sol.x, nfe=sol.nfe)
