"""Clash relaxation: the sampled molecules moved apart, rigidly, until no two atoms of different
molecules sit closer than a contact distance.

A flow sampler places each molecule where the network points, and nothing in the ODE keeps two
molecules from overlapping: a network that has learnt the cluster's size but not its packing puts
atoms of neighbours on top of each other. Assembly pipelines finish with a short force-field
minimisation for that reason; this is its smallest form: the clash penalty of the atoms
(metrics.clash_penalty: the squared overlap below `distance` of every pair of atoms of two molecules)
minimised over each molecule's pose, translation and rotation together (the state u the flows
integrate), with Adam from the sampled poses. Molecules that do not clash get no gradient and stay
where the flow put them; the molecules keep their shapes (rigid moves only). It stops after `steps`
or as soon as no pair of atoms in the batch is closer than `distance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .flow import AssemblyBatch
from .metrics import clash_penalty


@dataclass(frozen=True)
class Relaxation:
    steps: int = 0  # Adam steps (0: off)
    distance: float = 2.0  # Angstrom: atoms of two molecules closer than this push each other apart
    lr: float = 0.05  # Adam's step: about how far (Angstrom, radian) a clashing pose moves per step

    def __post_init__(self):
        for name, ok in [("steps", self.steps >= 0), ("distance", self.distance > 0), ("lr", self.lr > 0)]:
            if not ok:
                raise ValueError(f"relaxation {name}={getattr(self, name)!r} is out of range (steps >= 0, others > 0)")


NO_RELAXATION = Relaxation()  # the samples as the flow leaves them


def relax(batch: AssemblyBatch, u: Tensor, relaxation: Relaxation) -> Tensor:
    """(N, M, 6) sampled states -> the relaxed states; unchanged with steps=0."""
    if relaxation.steps == 0:
        return u
    mask = batch.numbers > 0
    with torch.enable_grad():
        du = torch.zeros_like(u, requires_grad=True)
        opt = torch.optim.Adam([du], lr=relaxation.lr)
        for _ in range(relaxation.steps):
            penalty = clash_penalty(batch.atoms(u + du), mask, relaxation.distance)  # (N,)
            if not bool(penalty.any()):  # no clash left anywhere: done (Adam's momentum would drift on)
                break
            opt.zero_grad(set_to_none=True)
            penalty.sum().backward()
            opt.step()
    return (u + du).detach()
