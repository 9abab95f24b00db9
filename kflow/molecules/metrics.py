"""Assembly metrics, as AssembleFlow reports them on COD-Cluster17.

PM (packing matching): the root-mean-square difference between the full pairwise-distance
matrix of the generated cluster and that of the crystal cluster, over all atoms (PM-atom) or over
molecule centres (PM-center, a centre being the unweighted mean of the molecule's atoms).
Distances are invariant to rotating or moving the whole cluster, so no alignment is needed.
Collision: some pair of atoms of two different molecules closer than `collision` Angstrom.
Separation: some molecule whose nearest atom of another molecule is farther than `separation`
Angstrom (it drifted off the cluster). The rates are the fractions of clusters with either.
With several samples per cluster, PM-atom and PM-center each take their best sample, collision and
separation are those of the PM-atom-best sample; then everything is averaged over clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _rms_distance_gap(a: Tensor, b: Tensor) -> Tensor:
    """a, b (..., P, 3) -> RMS over all P x P entries of |D(a) - D(b)|."""
    return (torch.cdist(a, a) - torch.cdist(b, b)).pow(2).mean((-1, -2)).sqrt()


def pm_atom(x: Tensor, ref: Tensor) -> Tensor:
    """(..., M, A, 3) generated and crystal clusters -> (...,) PM-atom."""
    return _rms_distance_gap(x.flatten(-3, -2), ref.flatten(-3, -2))


def pm_center(x: Tensor, ref: Tensor) -> Tensor:
    return _rms_distance_gap(x.mean(-2), ref.mean(-2))


def nearest_other_molecule(x: Tensor) -> Tensor:
    """(..., M, A, 3) -> (..., M) distance from each molecule to the nearest atom of another one."""
    M, A = x.shape[-3], x.shape[-2]
    d = torch.cdist(x.flatten(-3, -2), x.flatten(-3, -2))  # (..., MA, MA)
    mol = torch.arange(M, device=x.device).repeat_interleave(A)
    same = mol[:, None] == mol[None, :]
    d = d.masked_fill(same, float("inf"))
    return d.amin(-1).unflatten(-1, (M, A)).amin(-1)


@dataclass
class AssemblyScores:
    pm_atom: float
    pm_center: float
    collision_rate: float
    separation_rate: float
    clusters: int
    samples_per_cluster: int


def score_assemblies(samples: Tensor, ref: Tensor, collision: float = 1.0, separation: float = 4.0) -> AssemblyScores:
    """samples (S, N, M, A, 3): S samples for each of N clusters (or (N, M, A, 3), one each);
    ref (N, M, A, 3). Best of S per cluster (module docstring), then means over clusters."""
    if samples.dim() == 4:
        samples = samples[None]
    S, N = samples.shape[:2]
    pa = pm_atom(samples, ref.expand_as(samples))  # (S, N)
    best = pa.argmin(0)  # (N,)
    pick = samples[best, torch.arange(N)]  # (N, M, A, 3)
    near = nearest_other_molecule(pick)  # (N, M)
    return AssemblyScores(
        pm_atom=pa.min(0).values.mean().item(),
        pm_center=pm_center(samples, ref.expand_as(samples)).min(0).values.mean().item(),
        collision_rate=(near < collision).any(-1).float().mean().item(),
        separation_rate=(near > separation).any(-1).float().mean().item(),
        clusters=N,
        samples_per_cluster=S,
    )
