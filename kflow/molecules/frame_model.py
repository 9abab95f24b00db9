"""A frame-based equivariant network for rigid molecules: an intra-molecular encoder, then message
passing between all molecule pairs (width 128 by default).

Every molecule carries its own frame: the translation t_i and rotation R_i of the state (atoms =
R_i local + t_i). Everything the network reads is expressed in those frames, so it is invariant:
a molecule's atoms in its own frame (the crystal conformation in its inertial frame), and for each
pair (i, j) j's centre and orientation seen from i, R_i^T (t_j - t_i) and R_i^T R_j, with the
closest atom contact between them. Rotating and moving the whole cluster changes none of these
(t -> Q t + s, R -> Q R). The heads then predict per molecule a translation and a rotation vector
in i's own frame, and R_i turns them into the world: equivariant by construction, with no
restriction on the MLPs (as in frame-based protein networks). EGNN's equivariant channels
(kflow.molecules.model) carry orientation only through cross products of coordinate updates, a
weak signal for learning orientations.

Outputs (world frame): a translational vector and a rotation vector per molecule. As a velocity
model they are dt/dk and the angular velocity; as an endpoint model (AssemblyConfig.target =
'endpoint') the displacement to the final centre and the rotation to the final orientation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.embeddings import KEmbedding


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.SiLU(), nn.Linear(h, h), nn.SiLU(), nn.Linear(h, o))


def rbf(d: Tensor, top: float, n: int = 16) -> Tensor:
    """Gaussian radial basis of distances d (...) on [0, top] -> (..., n)."""
    mu = torch.linspace(0, top, n, device=d.device, dtype=d.dtype)
    return torch.exp(-(((d[..., None] - mu) / (top / n)) ** 2))


class AtomLayer(nn.Module):
    """Message passing between the atoms of one molecule (all pairs; molecules are small). Messages
    are SiLU(A h_a + B h_b + C rbf(d_ab)) followed by one linear map: the per-pair cost is one
    H x H product, so the encoder stays cheap next to 17 x 30^2 atom pairs per cluster."""

    def __init__(self, h: int):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(h, h), nn.Linear(h, h, bias=False), nn.Linear(16, h, bias=False)
        self.msg = nn.Linear(h, h)
        self.node = _mlp(2 * h, h, h)

    def forward(self, h: Tensor, d_rbf: Tensor, pair_mask: Tensor) -> Tensor:
        """h (G, A, H), d_rbf (G, A, A, 16) the distances' basis, pair_mask (G, A, A) -> updated h."""
        e = self.msg(nn.functional.silu(self.a(h)[:, :, None] + self.b(h)[:, None] + self.c(d_rbf)))
        w = pair_mask[..., None].to(e.dtype)
        agg = (e * w).sum(2) / w.sum(2).clamp_min(1)
        return h + self.node(torch.cat([h, agg], -1))


class PairLayer(nn.Module):
    """Attention over all other molecules of the cluster, messages from both molecules' features and
    the pair's geometry in i's frame."""

    def __init__(self, h: int, pair_dim: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.edge = _mlp(2 * h + pair_dim, h, h)
        self.score = nn.Linear(h, heads)
        self.node = _mlp(2 * h, h, h)
        self.norm = nn.LayerNorm(h)

    def forward(self, hm: Tensor, pair: Tensor) -> Tensor:
        """hm (N, M, H), pair (N, M, M, P) -> updated hm."""
        N, M, H = hm.shape
        e = self.edge(torch.cat([hm[:, :, None].expand(-1, -1, M, -1), hm[:, None].expand(-1, M, -1, -1), pair], -1))
        s = self.score(e)  # (N, M, M, heads)
        eye = torch.eye(M, dtype=torch.bool, device=hm.device)[None, :, :, None]
        a = s.masked_fill(eye, float("-inf")).softmax(2)  # over j != i
        msg = (a[..., None] * e.reshape(N, M, M, self.heads, H // self.heads)).sum(2).reshape(N, M, H)
        return hm + self.node(torch.cat([self.norm(hm), msg], -1))


class FrameNet(nn.Module):
    """Invariant features in each molecule's frame -> per-molecule vectors, rotated into the world."""

    def __init__(self, cfg, band_windows=()):
        super().__init__()
        h = cfg.hidden
        if h % 4:
            raise ValueError(f"net.hidden={h} must be divisible by the 4 attention heads")
        self.cfg = cfg
        ha = max(h // 2, 16)  # atom width: the encoder runs on every atom pair, the rest per molecule
        self.embed = nn.Embedding(cfg.num_types, ha)
        self.local_in = nn.Linear(3, ha)
        self.atom_layers = nn.ModuleList(AtomLayer(ha) for _ in range(cfg.layers))
        self.pool = _mlp(ha, h, h)
        self.k_embed = KEmbedding(h, band_windows=band_windows)
        pair_dim = 3 + 16 + 9 + 16 + 3 + 3  # r_ij in i's frame, |r_ij|, R_i^T R_j, contact distance, vector, site
        self.pair_layers = nn.ModuleList(PairLayer(h, pair_dim) for _ in range(cfg.mol_layers))
        self.head = _mlp(h, h, 6)
        nn.init.zeros_(self.head[-1].weight)  # start at zero motion: the flow begins as "stay"
        nn.init.zeros_(self.head[-1].bias)

    def pair_features(self, atoms: Tensor, mask: Tensor, t: Tensor, R: Tensor) -> Tensor:
        """(N, M, M, P): what i sees of j, all in i's frame (invariant to moving the whole cluster)."""
        N, M, A, _ = atoms.shape
        Rt = R.transpose(-1, -2)
        rel = t[:, None] - t[:, :, None]  # (N, M, M, 3): t_j - t_i
        r_i = torch.einsum("nixy,nijy->nijx", Rt, rel) / 10  # in units of 10 A
        d = rel.norm(dim=-1)
        rot = (Rt[:, :, None] @ R[:, None]).flatten(-2)  # (N, M, M, 9): R_i^T R_j
        # closest atom contact between i and j: its length, the vector from i's atom to j's, and where
        # on i it is (i's atom in i's frame)
        x = atoms.reshape(N, M * A, 3)
        dd = torch.cdist(x, x).reshape(N, M, A, M, A)
        valid = mask[:, :, :, None, None] & mask[:, None, None]
        dd = dd.masked_fill(~valid, float("inf")).permute(0, 1, 3, 2, 4).reshape(N, M, M, A * A)
        dmin, idx = dd.min(-1)  # (N, M, M)
        a_i, a_j = idx // A, idx % A
        n_idx = torch.arange(N, device=atoms.device)[:, None, None]
        i_idx = torch.arange(M, device=atoms.device)[None, :, None]
        j_idx = torch.arange(M, device=atoms.device)[None, None, :]
        p_i, p_j = atoms[n_idx, i_idx, a_i], atoms[n_idx, j_idx, a_j]  # (N, M, M, 3)
        contact = torch.einsum("nixy,nijy->nijx", Rt, p_j - p_i) / 4
        site = torch.einsum("nixy,nijy->nijx", Rt, p_i - t[:, :, None]) / 4
        dmin = torch.nan_to_num(dmin, posinf=0.0)  # the diagonal (i with itself) is masked in attention
        return torch.cat([r_i, rbf(d, 30.0), rot, rbf(dmin, 8.0), contact, site], -1)

    def forward(self, atoms: Tensor, numbers: Tensor, k: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """atoms (N, M, A, 3), numbers (N, M, A) (0 = padding), k (N,), frames R (N, M, 3, 3) ->
        translational and rotational vectors (N, M, 3) each, in the world frame."""
        N, M, A, _ = atoms.shape
        mask = numbers > 0
        w = mask[..., None].to(atoms.dtype)
        count = w.sum(2).clamp_min(1)  # (N, M, 1)
        t = (atoms * w).sum(2) / count  # (N, M, 3)
        local = torch.einsum("nmyx,nmay->nmax", frames, atoms - t[:, :, None]) * w  # R^T (x - t)
        # intra-molecular encoder: the molecule's shape and atoms, in its own frame
        h = self.embed(numbers) + self.local_in(local / 4)  # (N, M, A, H)
        G = N * M
        hg = h.reshape(G, A, -1)
        lg = local.reshape(G, A, 3)
        d_rbf = rbf(torch.cdist(lg, lg), 8.0)  # (G, A, A, 16), once for every layer
        mg = mask.reshape(G, A)
        pm = mg[:, :, None] & mg[:, None] & ~torch.eye(A, dtype=torch.bool, device=atoms.device)[None]
        for layer in self.atom_layers:
            hg = layer(hg, d_rbf, pm)
        hm = self.pool((hg.reshape(N, M, A, -1) * w).sum(2) / count)  # (N, M, H)
        hm = hm + self.k_embed(k)[:, None]
        pair = self.pair_features(atoms, mask, t, frames)
        for layer in self.pair_layers:
            hm = layer(hm, pair)
        out = self.head(hm)  # (N, M, 6) in each molecule's frame
        v = torch.einsum("nmxy,nmy->nmx", frames, out[..., :3])
        omega = torch.einsum("nmxy,nmy->nmx", frames, out[..., 3:])
        return v, omega
