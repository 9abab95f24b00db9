"""Rigid-body maps and assembly metrics on hand-made clusters with known answers."""

import math

import numpy as np
import pytest
import torch

from kflow.molecules.metrics import nearest_other_molecule, pm_atom, pm_center, score_assemblies
from kflow.molecules.rigid import RigidState, inertial_frame, so3_exp, so3_log


def random_rotation(n=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    return so3_exp(torch.randn(*n, 3, generator=g, dtype=torch.float64))


def test_exp_log_round_trip_and_finite_difference():
    w = torch.randn(200, 3, dtype=torch.float64)
    w = w / w.norm(dim=-1, keepdim=True) * torch.rand(200, 1, dtype=torch.float64) * (math.pi - 1e-6)
    R = so3_exp(w)
    torch.testing.assert_close(
        R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(200, 3, 3), rtol=0, atol=1e-12
    )
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(200, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(so3_log(R), w, rtol=0, atol=1e-8)
    # d/ds exp(s w) at s = 0 is hat(w): finite difference of the rotated vector
    v = torch.randn(3, dtype=torch.float64)
    h = 1e-6
    fd = (so3_exp(h * w[0]) @ v - so3_exp(-h * w[0]) @ v) / (2 * h)
    torch.testing.assert_close(fd, torch.linalg.cross(w[0], v), rtol=0, atol=1e-8)
    # tiny and near-pi angles
    for angle in (1e-9, 1e-5, math.pi - 1e-7):
        u = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
        u = u / u.norm() * angle
        torch.testing.assert_close(so3_log(so3_exp(u)), u, rtol=0, atol=1e-6)


def test_inertial_frame_is_a_rotation_and_equivariant():
    x = torch.randn(50, 9, 3, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    t, R = inertial_frame(x)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(50, dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(t, x.mean(1), rtol=0, atol=1e-12)
    Q, shift = random_rotation((50,), seed=1), torch.randn(50, 1, 3, dtype=torch.float64)
    y = x @ Q.transpose(-1, -2) + shift
    t2, R2 = inertial_frame(y)
    torch.testing.assert_close(R2, Q @ R, rtol=0, atol=1e-8)
    torch.testing.assert_close(t2, (Q @ t[..., None])[..., 0] + shift[:, 0], rtol=0, atol=1e-10)
    # the principal axes come out in order of increasing moment of inertia (long axis first)
    local = (x - t[:, None]) @ R
    var = local.pow(2).mean(1)
    assert (var[:, 0] >= var[:, 1]).all() and (var[:, 1] >= var[:, 2]).all()


def test_centrosymmetric_molecule_gets_a_deterministic_frame():
    """All third moments vanish for a centrosymmetric molecule: the first-atom rule decides."""
    half = torch.tensor([[1.5, 0.2, 0.1], [0.3, 0.9, -0.2], [0.1, -0.1, 0.4]], dtype=torch.float64)
    x = torch.cat([half, -half])[None]
    _, R = inertial_frame(x)
    Q = random_rotation(seed=2)
    _, R2 = inertial_frame(x @ Q.T)
    torch.testing.assert_close(R2[0], Q @ R[0], rtol=0, atol=1e-8)
    assert torch.linalg.det(R[0]) > 0


def test_rigid_state_reproduces_the_atoms():
    x = torch.randn(17, 7, 3, dtype=torch.float64) * 2 + torch.randn(17, 1, 3, dtype=torch.float64) * 8
    t, R = inertial_frame(x)
    state, local = RigidState(t, R), torch.einsum("...mji,...maj->...mai", R, x - t[..., None, :])  # R^T (x - t)
    torch.testing.assert_close(state.atoms(local), x, rtol=0, atol=1e-10)
    torch.testing.assert_close(local.mean(1), torch.zeros(17, 3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_pm_on_a_hand_made_cluster():
    """Two one-atom 'molecules' 3 A apart vs 4 A apart: the distance matrices differ by 1 in two
    of four entries, so PM = sqrt(2/4)."""
    ref = torch.tensor([[[0.0, 0, 0]], [[3.0, 0, 0]]], dtype=torch.float64)
    x = torch.tensor([[[0.0, 0, 0]], [[0.0, 4.0, 0]]], dtype=torch.float64)
    assert pm_atom(x, ref).item() == pytest.approx(math.sqrt(0.5))
    assert pm_center(x, ref).item() == pytest.approx(math.sqrt(0.5))
    # invariant to a rigid motion of the whole generated cluster
    Q = random_rotation(seed=3)
    assert pm_atom(x @ Q.T + 5.0, ref).item() == pytest.approx(math.sqrt(0.5))
    # two-atom molecules: a reference scipy computation of the same quantity
    from scipy.spatial.distance import cdist

    a, b = torch.randn(3, 2, 3, dtype=torch.float64), torch.randn(3, 2, 3, dtype=torch.float64)
    A, B = a.reshape(-1, 3).numpy(), b.reshape(-1, 3).numpy()
    want = np.sqrt(((cdist(A, A) - cdist(B, B)) ** 2).mean())
    assert pm_atom(a, b).item() == pytest.approx(want, rel=1e-12)
    Ac, Bc = a.mean(1).numpy(), b.mean(1).numpy()
    assert pm_center(a, b).item() == pytest.approx(np.sqrt(((cdist(Ac, Ac) - cdist(Bc, Bc)) ** 2).mean()), rel=1e-12)


def test_collision_separation_and_best_of_n():
    ref = torch.tensor(
        [[[0.0, 0, 0], [1, 0, 0]], [[0, 3, 0], [1, 3, 0]], [[0, 6, 0], [1, 6, 0]]], dtype=torch.float64
    )  # three 2-atom molecules 3 A apart
    near = nearest_other_molecule(ref)
    torch.testing.assert_close(near, torch.tensor([3.0, 3.0, 3.0], dtype=torch.float64))
    collided = ref.clone()
    collided[2] += torch.tensor([0.0, -2.5, 0.0], dtype=torch.float64)  # 0.5 A from molecule 1
    separated = ref.clone()
    separated[2] += torch.tensor([0.0, 10.0, 0.0], dtype=torch.float64)
    samples = torch.stack([collided, separated, ref])[:, None]  # (S=3, N=1, M, A, 3)
    s = score_assemblies(samples, ref[None])
    assert s.pm_atom == 0 and s.collision_rate == 0 and s.separation_rate == 0 and s.samples_per_cluster == 3
    s1 = score_assemblies(torch.stack([collided, separated]), ref[None].expand(2, -1, -1, -1))
    assert s1.collision_rate == 0.5 and s1.separation_rate == 0.5 and s1.clusters == 2


def test_pm_center_matched_finds_the_copies_of_a_turned_shuffled_crystal():
    """A crystal cluster turned, moved and with its copies listed in another order is the crystal:
    PM-center under the given pairing is large, with the copies matched it is 0. On any other
    cluster the matched value is never above PM-center (the given pairing is one of those tried)."""
    from scipy.spatial.transform import Rotation

    from kflow.molecules.metrics import pm_center_matched

    g = torch.Generator().manual_seed(0)
    f64 = dict(generator=g, dtype=torch.float64)
    crystal = torch.randn(17, 1, 3, **f64) * 4 + 0.3 * torch.randn(17, 5, 3, **f64)  # (M, A, 3)
    Q = torch.from_numpy(Rotation.from_rotvec([0.4, -1.9, 2.2]).as_matrix())
    shuffled = (crystal @ Q.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))[torch.randperm(17, generator=g)]
    assert pm_center(shuffled, crystal) > 1.0
    assert pm_center_matched(shuffled, crystal) < 1e-9
    other = torch.randn(3, 2, 17, 5, 3, **f64) * 4  # (S, N, M, A, 3)
    ref = crystal.expand(2, -1, -1, -1)
    m = pm_center_matched(other, ref)
    assert m.shape == (3, 2) and (m <= pm_center(other, ref) + 1e-12).all() and (m > 0).all()
    s = score_assemblies(torch.stack([shuffled[None], crystal[None] * 1.1]), crystal[None], matched=True)
    assert s.pm_center_matched < 1e-9 and score_assemblies(shuffled[None], crystal[None]).pm_center_matched is None


def test_clash_penalty_counts_close_pairs_of_two_molecules_and_pushes_them_apart():
    from kflow.molecules.metrics import clash_penalty

    ref = torch.tensor([[[0.0, 0, 0], [1, 0, 0]], [[0, 3, 0], [1, 3, 0]], [[0, 6, 0], [1, 6, 0]]], dtype=torch.float64)[
        None
    ]  # three 2-atom molecules 3 A apart; the atoms of one molecule 1 A apart (not a clash)
    mask = torch.ones(1, 3, 2, dtype=torch.bool)
    assert clash_penalty(ref, mask, 1.5).item() == 0
    moved = ref.clone()
    moved[0, 2] += torch.tensor([0.0, -2.5, 0.0], dtype=torch.float64)  # atoms 0.5 A above molecule 1's
    # pairs closer than 1.5: (1,0)-(2,0) and (1,1)-(2,1) at 0.5; (1,0)-(2,1), (1,1)-(2,0) at sqrt(1.25)
    want = (2 * 1.0**2 + 2 * (1.5 - math.sqrt(1.25)) ** 2) / 3
    torch.testing.assert_close(clash_penalty(moved, mask, 1.5), torch.tensor([want], dtype=torch.float64))
    masked = mask.clone()
    masked[0, 2] = False  # padding never clashes
    assert clash_penalty(moved, masked, 1.5).item() == 0
    x = moved.clone().requires_grad_(True)
    clash_penalty(x, mask, 1.5).sum().backward()
    assert x.grad[0, 2, :, 1].lt(0).all() and x.grad[0, 1, :, 1].gt(0).all()  # descent: 2 up, 1 down
