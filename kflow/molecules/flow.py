"""Assembly flows: move 17 rigid molecules from their loose start to the crystal packing.

State: per molecule a 6-vector u = [t - t_0, log(R_0^T R)], the translation from the start and
the rotation vector relative to the start orientation (body frame). u = 0 is the start, u_1 =
[t_1 - t_0, log(R_0^T R_1)] the crystal, and the straight line u_k = k u_1 is linear in
translation and the geodesic on SO(3) in rotation: that one-band path is rigid flow matching
(the AssembleFlow-style baseline). K-Flow takes the same u as a signal on the graph of the 17
molecules (Gaussian weights of the start centres' distances, known at sampling time) and runs the
K-Flow path over its graph-frequency bands: collective motions first, then finer relative ones.
Both are KFlowPath + the sampler's solvers (trained with AssemblyLoss, molecules/train.py); only the
transform differs.

The network sees the atoms at the current state and predicts world-frame translational and
angular velocities; the rotational part of du/dk is taken as R_0^T omega (invariant to a global
rotation, as u's rotational part is), so the model is equivariant and its targets exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..path import BandSchedule, KFlowPath
from ..transforms import IdentityTransform
from ..transforms.graph import GraphTransform, gaussian_weights, graph_spectrum
from .clusters import Cluster
from .rigid import RigidState, inertial_frame, kabsch, so3_exp, so3_log

FLOWS = ("rigid_fm", "kflow")


@dataclass
class AssemblyBatch:
    numbers: Tensor  # (N, M, A) long, 0 = padding
    local: Tensor  # (N, M, A, 3) atoms in each molecule's inertial frame (crystal conformation)
    t0: Tensor  # (N, M, 3) start translations
    R0: Tensor  # (N, M, 3, 3) start rotations
    u1: Tensor  # (N, M, 6) the crystal as displacement from the start
    target: Tensor  # (N, M, A, 3) crystal atoms
    # the start graph's Laplacian spectrum (float64), computed once per cluster: the start never moves
    graph_evals: Tensor  # (N, M)
    graph_basis: Tensor  # (N, M, M) columns = graph frequencies

    def state(self, u: Tensor) -> RigidState:
        return RigidState(self.t0 + u[..., :3], self.R0 @ so3_exp(u[..., 3:]))

    def atoms(self, u: Tensor) -> Tensor:
        return self.state(u).atoms(self.local) * (self.numbers > 0)[..., None]

    def to(self, device) -> AssemblyBatch:
        return AssemblyBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def make_batch(clusters: list[Cluster], dtype=torch.float32) -> AssemblyBatch:
    """Pad molecules to the largest atom count; poses from inertial frames (target) and Kabsch (start)."""
    A = max(c.numbers.shape[1] for c in clusters)
    N, M = len(clusters), clusters[0].numbers.shape[0]
    numbers = torch.zeros(N, M, A, dtype=torch.long)
    target = torch.zeros(N, M, A, 3, dtype=torch.float64)
    start = torch.zeros(N, M, A, 3, dtype=torch.float64)
    for i, c in enumerate(clusters):
        a = c.numbers.shape[1]
        numbers[i, :, :a] = torch.from_numpy(c.numbers)
        target[i, :, :a] = torch.from_numpy(c.target)
        start[i, :, :a] = torch.from_numpy(c.start)
    mask = numbers > 0
    w = mask[..., None].double()
    t1 = (target * w).sum(2) / w.sum(2)
    _, R1 = inertial_frame(torch.where(mask[..., None], target, t1[:, :, None]))  # padding at the centre: no effect
    local = torch.einsum("nmji,nmaj->nmai", R1, target - t1[:, :, None]) * w
    t0 = (start * w).sum(2) / w.sum(2)
    R0 = kabsch(local, start, mask)
    u1 = torch.cat([t1 - t0, so3_log(R0.transpose(-1, -2) @ R1)], -1)
    t0 = t0.to(dtype)
    evals, U = graph_spectrum(gaussian_weights(t0.double()))  # the graph of the centres the model sees
    return AssemblyBatch(numbers, local.to(dtype), t0, R0.to(dtype), u1.to(dtype), target.to(dtype), evals, U)


ROTATIONS = ("graph", "own")


def assembly_schedule(
    flow: str, num_bands: int = 3, bump: str = "linear", overlap: float = 0.0, rotations: str = "graph"
) -> BandSchedule:
    """The band schedule of an assembly flow; it needs no cluster (graph bands are split by count),
    so the k-embedding reads the windows from here. rigid_fm: one band on [0, 1]. kflow: num_bands
    graph bands, their windows widened by `overlap`; rotations='own' adds one band for the
    rotations of every frequency, whose window is all of k (FM's schedule for orientations)."""
    if flow == "rigid_fm":
        return BandSchedule(1)
    if flow != "kflow":
        raise ValueError(f"unknown assembly flow {flow!r}; use one of {', '.join(FLOWS)}")
    if rotations not in ROTATIONS:
        raise ValueError(f"rotations={rotations!r} is not one of {', '.join(ROTATIONS)}")
    schedule = BandSchedule(num_bands, bump=bump, overlap=overlap)
    if rotations == "graph":
        return schedule
    return BandSchedule(num_bands + 1, bump=bump, windows=[*schedule.windows().tolist(), [0.0, 1.0]])


def graph_path(
    spectrum: tuple[Tensor, Tensor], num_bands: int, bump: str, overlap: float, rotations: str = "graph"
) -> KFlowPath:
    """K-Flow over the graph bands of clusters (their graph_spectrum: (N, M), (N, M, M)); the
    schedule is assembly_schedule's."""
    schedule = assembly_schedule("kflow", num_bands, bump, overlap, rotations)
    own = (3, 4, 5) if rotations == "own" else ()
    return KFlowPath(
        GraphTransform(spectrum=spectrum, features=6, num_bands=num_bands, own_band_features=own), schedule
    )


def assembly_path(
    batch: AssemblyBatch,
    flow: str,
    num_bands: int = 3,
    bump: str = "linear",
    overlap: float = 0.0,
    rotations: str = "graph",
) -> KFlowPath:
    """rigid_fm: one band (identity); kflow: graph-frequency bands of the start cluster, their
    k-windows widened by `overlap` (0: the hard path), rotations in the bands or on their own."""
    if flow == "rigid_fm":
        return KFlowPath(IdentityTransform((batch.t0.shape[1], 6)), assembly_schedule(flow))
    return graph_path((batch.graph_evals, batch.graph_basis), num_bands, bump, overlap, rotations)


TARGETS = ("velocity", "endpoint")


class BoundAssembly:
    """The network bound to a batch's molecules: the model(x, k, y=None) the loss and solvers call,
    with x = u (N, M, 6). target='velocity': du/dk, the rotational part R_0^T omega. target=
    'endpoint': the final u the network points to, its translation u_t + v and its rotation the
    current one turned by the predicted rotation vector (world frame), log(R_0^T exp(omega) R);
    sample with kflow.sampling.FromEndpoint."""

    def __init__(self, net, batch: AssemblyBatch, target: str = "velocity"):
        if target not in TARGETS:
            raise ValueError(f"target={target!r} is not one of {', '.join(TARGETS)}")
        self.net, self.batch, self.target = net, batch, target

    def outputs(self, u: Tensor, k: Tensor) -> tuple[Tensor, Tensor, RigidState]:
        """The network's world-frame (translational, rotational) vectors (N, M, 3) at state u."""
        b = self.batch
        state = b.state(u)
        atoms = b.atoms(u).to(u.dtype)
        v_t, omega = self.net(atoms, b.numbers, k.to(u.dtype).expand(u.shape[0]), state.R.to(u.dtype))
        return v_t, omega, state

    def endpoint_pose(self, u: Tensor, k: Tensor) -> RigidState:
        """The final poses the network points to (target='endpoint'): t + v, exp(omega) R."""
        v_t, omega, state = self.outputs(u, k)
        return RigidState(state.t + v_t, so3_exp(omega) @ state.R)

    def __call__(self, u: Tensor, k: Tensor, y=None) -> Tensor:
        R0 = self.batch.R0.to(u.dtype)
        if self.target == "velocity":
            v_t, omega, _ = self.outputs(u, k)
            return torch.cat([v_t, torch.einsum("nmji,nmj->nmi", R0, omega)], -1)  # R_0^T omega
        pose = self.endpoint_pose(u, k)
        return torch.cat([pose.t - self.batch.t0.to(u.dtype), so3_log(R0.transpose(-1, -2) @ pose.R)], -1)

    def parameters(self):
        return self.net.parameters()
