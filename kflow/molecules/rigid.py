"""Rigid bodies: a molecule as a translation (the mean of its atom positions) and a rotation (its
inertial frame), the SO(3) maps the flows need, and rigid overlays of two point sets whose points
may be listed in different orders (the crystal's slots on a start's molecules, for the aligned
pairing and the copies-matched metric).

The inertial frame has the eigenvectors of the (unit-mass) inertia tensor as columns, in order
of increasing principal moment. Eigenvectors have no sign, so we fix one: axis a is flipped
unless the atoms' third moment along it, sum_i (r_i . e_a)^3, is positive (ties, as in
centrosymmetric molecules, fall back to the first atom with a clear projection); the third axis
is then e_1 x e_2, so every frame is a proper rotation. The rule commutes with rotating the
molecule: frame(R x + t) = R frame(x) for non-degenerate molecules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def inertial_frame(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """x (..., A, 3) atom positions -> translation (..., 3) and frame R (..., 3, 3) (columns = axes)."""
    t = x.mean(-2)
    r = x - t[..., None, :]
    # unit-mass inertia tensor I = sum |r|^2 Id - r r^T; its eigenvectors are those of r^T r
    cov = r.transpose(-1, -2) @ r
    _, vecs = torch.linalg.eigh(cov)  # ascending second moment = descending inertia
    vecs = vecs.flip(-1)  # increasing principal moment of inertia
    proj = r @ vecs  # (..., A, 3)
    third = proj.pow(3).sum(-2)  # (..., 3)
    scale = proj.abs().amax(-2).clamp_min(1e-12)
    first = torch.gather(proj, -2, (proj.abs() > eps * scale[..., None, :]).float().argmax(-2, keepdim=True))[..., 0, :]
    sign = torch.where(third.abs() > eps * scale.pow(3), third.sign(), first.sign())
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    e1, e2 = vecs[..., 0] * sign[..., 0:1], vecs[..., 1] * sign[..., 1:2]
    R = torch.stack([e1, e2, torch.linalg.cross(e1, e2)], -1)
    return t, R


def hat(w: Tensor) -> Tensor:
    """(..., 3) -> (..., 3, 3) skew-symmetric matrix with hat(w) v = w x v."""
    z = torch.zeros_like(w[..., 0])
    return torch.stack(
        [
            torch.stack([z, -w[..., 2], w[..., 1]], -1),
            torch.stack([w[..., 2], z, -w[..., 0]], -1),
            torch.stack([-w[..., 1], w[..., 0], z], -1),
        ],
        -2,
    )


def so3_exp(w: Tensor) -> Tensor:
    """Rotation vector (..., 3) -> rotation matrix (Rodrigues), smooth at 0."""
    th = w.norm(dim=-1, keepdim=True)[..., None]  # (..., 1, 1)
    K = hat(w)
    small = th < 1e-4
    a = torch.where(small, 1 - th**2 / 6, torch.sin(th) / th.clamp_min(1e-12))
    b = torch.where(small, 0.5 - th**2 / 24, (1 - torch.cos(th)) / th.clamp_min(1e-12) ** 2)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def so3_log(R: Tensor) -> Tensor:
    """Rotation matrix (..., 3, 3) -> rotation vector (..., 3) with angle in [0, pi]."""
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    th = torch.acos(cos)
    v = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    small = th < 1e-4
    w = v * torch.where(small, 0.5 + th**2 / 12, th / (2 * torch.sin(th).clamp_min(1e-12)))[..., None]
    # near pi, sin -> 0: take the axis from the symmetric part, R + I = 2 n n^T (1 - cos) ...
    near_pi = th > torch.pi - 1e-3
    if near_pi.any():
        B = (R + R.transpose(-1, -2)) / 2 - cos[..., None, None] * torch.eye(3, dtype=R.dtype, device=R.device)
        col = B.diagonal(dim1=-2, dim2=-1).argmax(-1)
        n = torch.gather(B, -1, col[..., None, None].expand(*B.shape[:-1], 1))[..., 0]
        n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        n = n * torch.where((n * v).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(n)
        w = torch.where(near_pi[..., None], n * th[..., None], w)
    return w


@dataclass
class RigidState:
    """Poses of M molecules: translations (..., M, 3), rotations (..., M, 3, 3); atoms are
    R @ local + t with `local` (M, A, 3) each molecule's coordinates in its own inertial frame."""

    t: Tensor
    R: Tensor

    def atoms(self, local: Tensor) -> Tensor:
        return torch.einsum("...mij,...maj->...mai", self.R, local) + self.t[..., None, :]


def kabsch(local: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """Rotation R (..., 3, 3) minimising |R local - (x - mean)| over the atoms in mask."""
    w = mask[..., None].to(x.dtype)
    xc = x - (x * w).sum(-2, keepdim=True) / w.sum(-2, keepdim=True).clamp_min(1)
    H = (local * w).transpose(-1, -2) @ (xc * w)  # (..., 3, 3)
    U, _, Vh = torch.linalg.svd(H)
    d = torch.sign(torch.linalg.det(Vh.transpose(-1, -2) @ U.transpose(-1, -2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return Vh.transpose(-1, -2) @ D @ U.transpose(-1, -2)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) uniform on SO(3) (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def overlay_starts(points: np.ndarray, slots: np.ndarray, turns: int, seed: int = 0) -> list[np.ndarray]:
    """Start rotations for overlaying slots (M, 3) onto points (M, 3), both centred: the identity,
    the principal axes of the two clouds put on each other (each proper sign choice: exact for a
    rigid copy with distinct axes), and `turns` random ones (for near-symmetric clouds)."""

    def axes(p):  # principal axes as the columns of a proper rotation
        v = np.linalg.eigh(p.T @ p)[1]
        return v * np.sign(np.linalg.det(v))

    flips = [np.diag(f) for f in ([1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
    return [
        np.eye(3),
        *(axes(points) @ f @ axes(slots).T for f in flips),
        *random_rotations(turns, np.random.default_rng(seed)),
    ]


def overlays(points: np.ndarray, slots: np.ndarray, starts: list[np.ndarray], iters: int = 6):
    """Rigid overlays of slots (M, 3) onto points (M, 3), both centred: from each start rotation,
    alternate the assignment (Hungarian on squared distances) and the rotation (Kabsch). Yields
    (col, R, cost) for every assignment: point i <-> slot col[i] under slots turned by R, cost the
    sum of squared distances."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    for R in starts:
        for _ in range(iters):
            cost = cdist(points, slots @ R.T, "sqeuclidean")
            _, col = linear_sum_assignment(cost)
            yield col, R, float(cost[np.arange(len(col)), col].sum())
            # R minimising sum |p_i - R s_col[i]|^2: `kabsch` in numpy, without its mask and batch (this
            # loop runs thousands of times per cluster, where the torch version costs 4-5x as much)
            U, _, Vt = np.linalg.svd(slots[col].T @ points)
            R = Vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))]) @ U.T
