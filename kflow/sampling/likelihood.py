"""Exact log-likelihood of data under a trained flow, band by band.

Along the flow d log p_k(x_k) / dk = -div v(x_k, k), so integrating the ODE from the data x_1
(k = 1) back to its noise x_0 (k = 0) together with the divergence gives

    log p_1(x_1) = log N(x_0; 0, I) - int_0^1 div v(x_k, k) dk.

The divergence is a trace, and a trace is the same in any orthonormal basis: in the transform's,
div v = sum_i (F J F^T)_ii, which splits exactly over the bands. So does the prior term (the noise
is white in every orthonormal basis). The log-likelihood is therefore a sum of per-band terms,
band b's being its prior term on its noise coefficients minus its part of the trace. On the hard
path, where band b moves only in its window with the coarser bands fixed and the finer ones
untouched noise, band b's term is log p(band b | coarser bands): the chain rule over scales.

The trace is exact (one vector-Jacobian product per coefficient: small data) or Hutchinson's
estimate (probes fixed along the whole integration, drawn in the transform's basis from a seed).
A staged model's velocity is zero on bands that have not started (models/staged.py), so their
part of the trace is zero and is skipped. Samples interact nowhere in the model (per-sample
normalisation), so one product serves the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .sampler import make_grid
from .solvers import get_solver

DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
LOG2_BIN = math.log2(127.5)  # log2 of 1 / (the width 2/255 of one 8-bit level in [-1, 1])


@dataclass
class LogLikelihood:
    total: Tensor  # (N,) float64 log p(x_1) in nats
    band: Tensor  # (N, B) float64 per-band terms, summing to total
    prior: Tensor  # (N, B) float64 per-band log N(c_0; 0, I) of the noise reached
    x_0: Tensor  # (N, *shape) the noise x_1 maps to
    nfe: int  # velocity (and trace) evaluations per sample


def band_divergence(
    velocity,
    x: Tensor,
    k: Tensor,
    transform,
    probes: Tensor | None = None,
    skip: Tensor | None = None,
    chunk: int = 64,
) -> tuple[Tensor, Tensor]:
    """(v, div): the velocity at (x, k) and its divergence split by band, (N, B) float64.
    probes None: the exact trace, `chunk` vector-Jacobian products batched at a time; else
    (P, N, D) Hutchinson probes in the transform's basis (the estimate is their mean).
    skip (B,) bool: bands whose trace is known to be zero."""
    N, B, bands = x.shape[0], transform.num_bands, transform.bands.to(x.device)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, k)
        div = torch.zeros(N, B, dtype=torch.float64, device=x.device)
        keep = torch.ones(B, dtype=torch.bool) if skip is None else ~skip.cpu()
        coeffs = torch.nonzero(keep[bands.cpu()]).flatten()
        if probes is None:  # e_i^T F J F^T e_i per coefficient of the bands kept, `chunk` at a time
            for lo in range(0, len(coeffs), chunk):
                idx = coeffs[lo : lo + chunk].to(x.device)
                eye = torch.zeros(len(idx), transform.dim, dtype=x.dtype, device=x.device)
                eye[torch.arange(len(idx)), idx] = 1
                u = transform.synthesize(eye)  # (C, *shape): the directions F^T e_i
                u = u[:, None].expand(len(idx), *x.shape)  # the same directions for every sample
                (g,) = torch.autograd.grad(v, x, u, retain_graph=True, is_grads_batched=True)
                div.index_add_(1, bands[idx], (g * u).flatten(2).sum(2).T.double())
        else:
            mask = keep.to(x.device)[bands].to(probes.dtype)
            for eps in probes:  # (N, D): per band sum_{i in b} eps_i (F J^T F^T eps)_i
                eps = eps * mask
                (g,) = torch.autograd.grad(v, x, transform.synthesize(eps), retain_graph=True)
                div.index_add_(1, bands, (transform.analyze(g) * eps).double())
            div /= len(probes)
    return v.detach(), div


def draw_probes(n: int, N: int, D: int, kind: str, seed: int, dtype=torch.float32) -> Tensor:
    """(n, N, D) probes with E[eps eps^T] = I: Rademacher signs or standard normals, from a seed."""
    if kind not in PROBES:
        raise ValueError(f"probe={kind!r}: use one of {', '.join(PROBES)}")
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(n, N, D, generator=g, dtype=dtype)
    return torch.randint(0, 2, (n, N, D), generator=g).to(dtype) * 2 - 1


@torch.no_grad()
def log_likelihood(
    model,
    path,
    x_1: Tensor,
    *,
    y: Tensor | None = None,
    divergence: str = "exact",
    probes: int = 1,
    probe: str = "rademacher",
    solver: str = "dopri5",
    steps: int = 100,
    grid: str = "band",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    seed: int = 0,
) -> LogLikelihood:
    """log p(x_1) (N, *shape) under the flow of model(x, k, y), in nats, with its per-band split.
    Integrates from k = 1 to 0 with `solver` (dopri5 with rtol/atol; a fixed-step solver with
    `steps` on `grid`), in x_1's dtype and device."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r}: use one of {', '.join(DIVERGENCES)}")
    if divergence == "hutchinson" and probes < 1:
        raise ValueError(f"probes={probes} must be at least 1 for Hutchinson's estimator")
    T = path.transform
    T.check_input(x_1)
    N, D, B = x_1.shape[0], T.dim, T.num_bands
    shape = tuple(x_1.shape[1:])
    eps = None
    if divergence == "hutchinson":
        eps = draw_probes(probes, N, D, probe, seed, x_1.dtype).to(x_1.device)
    bands = torch.arange(B)
    staged = hasattr(model, "stage_of")  # zero velocity (so trace) on the bands after the stage

    def augmented(z: Tensor, k: Tensor) -> Tensor:
        # z = [x flattened, the trace integrated so far per band]; dz/dk = [v, -div by band]
        x = z[:, :D].reshape(N, *shape)
        skip = bands > int(model.stage_of(k[:1])[0]) if staged else None
        v, div = band_divergence(lambda xx, kk: model(xx, kk, y), x, k, T, eps, skip)
        return torch.cat([v.flatten(1).to(z.dtype), -div.to(z.dtype)], 1)

    z = torch.cat([x_1.flatten(1), torch.zeros(N, B, dtype=x_1.dtype, device=x_1.device)], 1)
    ks = make_grid(path, steps, grid, solver=solver).flip(0)  # from the data (k = 1) back to the noise
    solve = get_solver(solver)
    out = solve(augmented, z, ks, rtol=rtol, atol=atol) if solver == "dopri5" else solve(augmented, z, ks)
    x_0 = out.x[:, :D].reshape(N, *shape)
    trace = out.x[:, D:].double()  # (N, B) int_0^1 of each band's part of div v
    c_0 = T.analyze(x_0).double()
    prior = torch.zeros(N, B, dtype=torch.float64, device=x_1.device)
    prior.index_add_(1, T.bands.to(x_1.device), -0.5 * c_0.pow(2) - 0.5 * math.log(2 * math.pi))
    band = prior - trace
    return LogLikelihood(total=band.sum(1), band=band, prior=prior, x_0=x_0, nfe=out.nfe)


def dequantize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """8-bit images in kflow's range (x = u / 127.5 - 1) spread uniformly over their level's bin
    [x - 1/255, x + 1/255): the continuous data whose log-likelihood bounds the discrete one."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return x + (u - 0.5) * (2 / 255)


def bits_per_dim(log_p: Tensor, dims: int | Tensor, quantized: bool = True) -> Tensor:
    """Bits per dimension of log-likelihoods (nats) over `dims` dimensions. quantized: of 8-bit
    images under uniform dequantization (-log2 p / dims + log2 127.5, the density over one level's
    bin of width 2/255); else nats per dimension of continuous data (latents): -log p / dims."""
    if quantized:
        return -log_p / (dims * math.log(2)) + LOG2_BIN
    return -log_p / dims


@dataclass
class BitsPerDim:
    total: Tensor  # (N,) bits per dimension of each image (nats per dimension when not quantized)
    band: Tensor  # (N, B) bits per dimension of band b's own coefficients
    share: Tensor  # (N, B) band b's part of total (sums to total over b)
    unit: str  # 'bits/dim' or 'nats/dim'
    seconds: float  # wall-clock of the whole evaluation
    nfe: int  # velocity evaluations per batch (the last one)


def bits_by_band(
    model,
    path,
    x: Tensor,
    *,
    y: Tensor | None = None,
    scale=None,
    quantized: bool = True,
    batch_size: int = 100,
    seed: int = 0,
    device=None,
    progress=None,
    **options,
) -> BitsPerDim:
    """Bits per dimension of data x (N, *shape) in kflow's image range, per image and per band, in
    batches. quantized: 8-bit images, dequantized uniformly from `seed` (see dequantize); else
    continuous data (latents) in nats per dimension. scale: the run's BandScale, whose per-band
    normalisation the model's density lives in (its log-determinant is added back). `options` go
    to log_likelihood (divergence, probes, solver, rtol, ...). progress(done, total) after each batch."""
    import time

    T = path.transform
    sizes = T.band_sizes().double()
    device = device or next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    t0, bands, nfe = time.time(), [], 0
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        xb = dequantize(xb, g) if quantized else xb
        if scale is not None:
            xb = scale.normalize(xb)
        yb = None if y is None else y[i : i + batch_size].to(device)
        ll = log_likelihood(model, path, xb.to(device), y=yb, seed=seed + i, **options)
        band = ll.band.cpu()
        if scale is not None:  # p_x(x) = p_z(z) |det dz/dx|, dz/dx = diag(1 / rms) per band
            band = band - sizes * torch.log(scale.rms.double())
        bands.append(band)
        nfe = ll.nfe
        if progress is not None:
            progress(min(i + batch_size, len(x)), len(x))
    band = torch.cat(bands)  # (N, B) nats
    D = T.dim
    per_band = torch.stack([bits_per_dim(band[:, b], sizes[b], quantized) for b in range(T.num_bands)], 1)
    share = per_band * sizes / D
    unit = "bits/dim" if quantized else "nats/dim"
    return BitsPerDim(per_band @ sizes / D, per_band, share, unit, time.time() - t0, nfe)
