"""Assembly metrics, as AssembleFlow reports them on COD-Cluster17.

PM (packing matching): the root-mean-square difference between the full pairwise-distance
matrix of the generated cluster and that of the crystal cluster, over all atoms (PM-atom) or over
molecule centres (PM-center, a centre being the unweighted mean of the molecule's atoms).
Distances are invariant to rotating or moving the whole cluster, so no alignment is needed; which
generated copy is compared with which crystal molecule is the task's pairing (pm_center_matched
lets the copies be matched instead, as packing-similarity tools do).
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


def pm_center_matched(x: Tensor, ref: Tensor, turns: int = 64, iters: int = 6, seed: int = 0) -> Tensor:
    """(..., M, A, 3) generated and crystal clusters -> (...,) PM-center with the copies matched.

    The 17 molecules are copies of one molecule, so which generated copy stands for which crystal
    slot is a convention; PM-center above takes the task's pairing. Here the pairing is the one that
    fits best (as packing-similarity tools overlay clusters): from the starting orientations of
    rigid.overlay_starts (`turns` random ones among them), alternate the assignment (Hungarian
    on squared centre distances) and the best rotation of the crystal onto the generated centres
    (Kabsch), and keep the assignment with the smallest PM-center, the task's own pairing included. The exact minimum
    is a quadratic assignment problem; this is an upper bound on it, never above PM-center, and 0
    when the generated centres are a rigid copy of the crystal's in any order."""
    import numpy as np
    from scipy.spatial.distance import cdist

    from .rigid import overlay_starts, overlays

    g_all = x.mean(-2).detach().cpu().double().numpy().reshape(-1, *x.shape[-3:-2], 3)
    c_all = ref.expand_as(x).mean(-2).detach().cpu().double().numpy().reshape(g_all.shape)
    out = []
    for g, c in zip(g_all, c_all):
        g, c = g - g.mean(0), c - c.mean(0)
        d_c = cdist(c, c)
        gap = lambda order: np.sqrt(((cdist(g[order], g[order]) - d_c) ** 2).mean())
        best = gap(np.arange(len(g)))  # the task's own pairing
        for col, _, _ in overlays(g, c, overlay_starts(g, c, turns, seed), iters):
            best = min(best, gap(np.argsort(col)))  # slot j <- generated molecule argsort(col)[j]
        out.append(best)
    return torch.tensor(out, dtype=x.dtype).reshape(x.shape[:-3])


def nearest_other_molecule(x: Tensor) -> Tensor:
    """(..., M, A, 3) -> (..., M) distance from each molecule to the nearest atom of another one."""
    M, A = x.shape[-3], x.shape[-2]
    d = torch.cdist(x.flatten(-3, -2), x.flatten(-3, -2))  # (..., MA, MA)
    mol = torch.arange(M, device=x.device).repeat_interleave(A)
    same = mol[:, None] == mol[None, :]
    d = d.masked_fill(same, float("inf"))
    return d.amin(-1).unflatten(-1, (M, A)).amin(-1)


def clash_penalty(x: Tensor, mask: Tensor, distance: float) -> Tensor:
    """(N, M, A, 3), (N, M, A) real atoms -> (N,): the sum over pairs of atoms of two different
    molecules of (distance - d)^2 where they are closer than `distance`, per molecule. Smooth,
    zero for a cluster without clashes; its gradient pushes clashing molecules apart."""
    M, A = mask.shape[1:]
    flat = x.flatten(1, 2)  # (N, MA, 3)
    d = ((flat[:, :, None] - flat[:, None]).pow(2).sum(-1) + 1e-12).sqrt()  # (N, MA, MA), safe at 0
    mol = torch.arange(M, device=x.device).repeat_interleave(A)
    real = mask.flatten(1)
    pairs = real[:, :, None] & real[:, None, :] & (mol[:, None] != mol[None, :])
    return (torch.relu(distance - d).pow(2) * pairs).sum((1, 2)) / 2 / M


@dataclass
class AssemblyScores:
    pm_atom: float
    pm_center: float
    collision_rate: float
    separation_rate: float
    clusters: int
    samples_per_cluster: int
    pm_center_matched: float | None = None  # with matched=True: PM-center with the copies matched (best of S)


def score_assemblies(
    samples: Tensor, ref: Tensor, collision: float = 1.0, separation: float = 4.0, matched: bool = False
) -> AssemblyScores:
    """samples (S, N, M, A, 3): S samples for each of N clusters (or (N, M, A, 3), one each);
    ref (N, M, A, 3). Best of S per cluster (module docstring), then means over clusters. matched:
    also pm_center_matched (slower: a rigid overlay search per sample)."""
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
        pm_center_matched=pm_center_matched(samples, ref.expand_as(samples)).min(0).values.mean().item()
        if matched
        else None,
    )
