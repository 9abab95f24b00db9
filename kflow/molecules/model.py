"""An E(3)-equivariant network over atoms, pooled per molecule, predicting rigid-body velocities.

Atom level: EGNN layers (Satorras et al. 2021) on a radius graph (edges within `cutoff`, each
flagged as inside one molecule or between two), messages from invariant features and squared distances, with an
equivariant coordinate channel. Molecule level: the atom features and coordinate updates are pooled
per molecule, then `mol_layers` fully connected EGNN layers over the molecules' centres mix the
cluster (cheap: 17 nodes), each moving the centres; their total displacement is the cluster-level
part of the translational velocity.
Outputs per molecule: a translational velocity (a vector: it rotates with the input) and an angular
velocity, built from cross products of atom offsets with their coordinate updates (a pseudovector,
which rotates the same way under proper rotations). Nothing depends on absolute positions or
orientations, so the outputs are equivariant to rotating and moving the whole cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..models.embeddings import KEmbedding

NETS = ("egnn", "frames")


@dataclass
class AssemblyNetConfig:
    kind: str = "egnn"  # egnn (this module) | frames (kflow.molecules.frame_model)
    hidden: int = 64
    layers: int = 3  # atom-level layers
    cutoff: float = 4.0  # Angstrom, radius graph (egnn)
    num_types: int = 100  # atomic numbers 1..99 (0 = padding)
    mol_layers: int = 1  # layers over the molecules (egnn: EGNN over centres; frames: pair attention)

    def __post_init__(self):
        from ..config import ConfigError

        if self.kind not in NETS:
            raise ConfigError(f"net.kind={self.kind!r} is not one of {', '.join(NETS)}")
        for key, value, ok in [
            ("net.hidden", self.hidden, isinstance(self.hidden, int) and self.hidden >= 1),
            ("net.layers", self.layers, isinstance(self.layers, int) and self.layers >= 1),
            ("net.mol_layers", self.mol_layers, isinstance(self.mol_layers, int) and self.mol_layers >= 0),
            ("net.cutoff", self.cutoff, 0 < self.cutoff < float("inf")),
            ("net.num_types", self.num_types, isinstance(self.num_types, int) and self.num_types >= 2),
        ]:
            if not ok:
                raise ConfigError(f"{key}={value!r} is out of range (sizes are positive, mol_layers may be 0)")
        if self.kind == "frames" and self.hidden % 4:
            raise ConfigError(f"net.hidden={self.hidden} must be divisible by 4 (attention heads) for net.kind=frames")


def make_net(cfg: AssemblyNetConfig, band_windows=()) -> nn.Module:
    """The network a config names; both take (atoms, numbers, k, frames) and return world-frame
    (translational, rotational) vectors (N, M, 3) each. band_windows: the path's (B, 2) k-windows
    for the k-embedding (AssemblyConfig.band_windows), or none (k alone)."""
    if cfg.kind == "frames":
        from .frame_model import FrameNet

        return FrameNet(cfg, band_windows)
    return AssemblyNet(cfg, band_windows)


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.SiLU(), nn.Linear(h, o))


class EGNNLayer(nn.Module):
    def __init__(self, h: int):
        super().__init__()
        self.edge = _mlp(2 * h + 2, h, h)  # h_i, h_j, |x_i - x_j|^2, same-molecule flag
        self.coord = _mlp(h, h, 1)
        self.node = _mlp(2 * h, h, h)

    def forward(self, h: Tensor, x: Tensor, src: Tensor, dst: Tensor, same: Tensor, deg: Tensor):
        rel = x[dst] - x[src]  # (E, 3) from neighbour src to node dst
        m = self.edge(torch.cat([h[dst], h[src], rel.pow(2).sum(-1, keepdim=True), same[:, None]], -1))
        dx = torch.zeros_like(x).index_add_(0, dst, rel * torch.tanh(self.coord(m))) / deg[:, None]
        agg = torch.zeros_like(h).index_add_(0, dst, m) / deg[:, None]
        return h + self.node(torch.cat([h, agg], -1)), dx


class MoleculeLayer(nn.Module):
    """Fully connected EGNN layer over the M molecule centres of each cluster."""

    def __init__(self, h: int):
        super().__init__()
        self.edge, self.node, self.coord = _mlp(2 * h + 1, h, h), _mlp(2 * h, h, h), _mlp(h, h, 1)

    def forward(self, hm: Tensor, centre: Tensor) -> tuple[Tensor, Tensor]:
        """hm (N, M, H), centre (N, M, 3) -> updated hm and the centres' displacement (N, M, 3)."""
        M = hm.shape[1]
        rel = centre[:, :, None] - centre[:, None]  # (N, M, M, 3) from j to i
        # squared distances in units of 10 A, so the MLP sees O(1) inputs at molecular spacings
        e = self.edge(
            torch.cat(
                [
                    hm[:, :, None].expand(-1, -1, M, -1),
                    hm[:, None].expand(-1, M, -1, -1),
                    rel.pow(2).sum(-1, keepdim=True) / 100,
                ],
                -1,
            )
        )  # (N, M, M, H)
        e = e * (1 - torch.eye(M, device=hm.device, dtype=e.dtype))[None, :, :, None]
        return hm + self.node(torch.cat([hm, e.mean(2)], -1)), (rel * torch.tanh(self.coord(e))).mean(2)


class AssemblyNet(nn.Module):
    def __init__(self, cfg: AssemblyNetConfig | None = None, band_windows=()):
        super().__init__()
        cfg = cfg or AssemblyNetConfig()
        self.cfg = cfg
        h = cfg.hidden
        self.embed = nn.Embedding(cfg.num_types, h)
        self.k_embed = KEmbedding(h, band_windows=band_windows)
        self.layers = nn.ModuleList(EGNNLayer(h) for _ in range(cfg.layers))
        self.mol_layers = nn.ModuleList(MoleculeLayer(h) for _ in range(cfg.mol_layers))
        self.trans_atom = _mlp(h, h, 1)
        self.ang_atom = _mlp(h, h, 1)

    def edges(self, x: Tensor, mol: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Radius graph over the atoms of each cluster; x (N, P, 3), mol (P,), mask (N, P)."""
        d = torch.cdist(x, x)  # (N, P, P)
        same = (mol[:, None] == mol[None, :])[None]
        keep = (d < self.cfg.cutoff) & mask[:, :, None] & mask[:, None, :]
        keep &= ~torch.eye(x.shape[1], dtype=torch.bool, device=x.device)[None]
        n, i, j = keep.nonzero(as_tuple=True)
        P = x.shape[1]
        return n * P + j, n * P + i, same.expand_as(keep)[n, i, j].to(x.dtype)

    def forward(self, atoms: Tensor, numbers: Tensor, k: Tensor, frames: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """atoms (N, M, A, 3), numbers (N, M, A) (0 = padding), k (N,) -> translational and angular
        velocities (N, M, 3) each, in the world frame. frames (the molecules' rotations) are not
        needed: this network reads orientation from the atoms alone."""
        N, M, A, _ = atoms.shape
        mask = numbers > 0  # (N, M, A)
        x = atoms.reshape(N, M * A, 3)
        mol = torch.arange(M, device=atoms.device).repeat_interleave(A)
        src, dst, same = self.edges(x, mol, mask.reshape(N, M * A))
        h = self.embed(numbers.reshape(-1)) + self.k_embed(k).repeat_interleave(M * A, 0)
        xf = x.reshape(-1, 3)
        deg = (
            torch.zeros(len(xf), device=x.device, dtype=x.dtype).index_add_(0, dst, torch.ones_like(same)).clamp_min(1)
        )
        dx_total = torch.zeros_like(xf)
        for layer in self.layers:
            h, dx = layer(h, xf + dx_total, src, dst, same, deg)
            dx_total = dx_total + dx
        h = h.reshape(N, M, A, -1) * mask[..., None]
        dxa = dx_total.reshape(N, M, A, 3) * mask[..., None]
        count = mask.sum(-1, keepdim=True).clamp_min(1)  # (N, M, 1)
        centre = (atoms * mask[..., None]).sum(2) / count  # (N, M, 3)
        hm = h.sum(2) / count  # (N, M, H)
        # molecule level: fully connected over the M centres, which each layer moves
        moved = centre
        for layer in self.mol_layers:
            hm, dc = layer(hm, moved)
            moved = moved + dc
        v_t = (moved - centre) + (dxa * self.trans_atom(h)).sum(2) / count
        offset = (atoms - centre[:, :, None]) * mask[..., None]
        w = torch.linalg.cross(offset, dxa) * self.ang_atom(h)  # pseudovectors
        omega = w.sum(2) / count
        return v_t, omega
