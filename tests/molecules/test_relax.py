"""Clash relaxation after sampling: clashing molecules pushed apart rigidly, the others left where
they are, nothing changed with zero steps."""

import pytest
import torch

pytest.importorskip("ase")

from test_flow import toy_clusters  # noqa: E402  (this folder is on sys.path under pytest)

from kflow.molecules.flow import make_batch  # noqa: E402
from kflow.molecules.metrics import clash_penalty, nearest_other_molecule  # noqa: E402
from kflow.molecules.relax import Relaxation, relax  # noqa: E402


def intra_distances(x):  # (N, M, A, 3) -> every molecule's own atom-atom distances
    return torch.cdist(x, x)


def test_relaxation_separates_clashing_molecules_rigidly():
    b = make_batch(toy_clusters(2), dtype=torch.float64)
    u = b.u1.clone()
    u[:, 1, :3] = u[:, 0, :3] + (b.t0[:, 0] - b.t0[:, 1]) + 0.3  # molecule 1 onto molecule 0 (0.3 A off)
    before = b.atoms(u)
    assert (nearest_other_molecule(before) < 1.0).any(-1).all()  # both clusters clash
    out = relax(b, u, Relaxation(steps=300, distance=2.0))
    after = b.atoms(out)
    mask = b.numbers > 0
    assert clash_penalty(after, mask, 2.0).max() < 1e-3 * clash_penalty(before, mask, 2.0).min()
    assert (nearest_other_molecule(after) > 1.9).all()
    # rigid moves only: every molecule keeps its own shape
    torch.testing.assert_close(intra_distances(after), intra_distances(before), rtol=0, atol=1e-9)


def test_molecules_without_clashes_stay_where_the_flow_put_them():
    b = make_batch(toy_clusters(2), dtype=torch.float64)
    crystal = b.u1  # the crystal itself: no two molecules closer than 2 A
    assert nearest_other_molecule(b.atoms(crystal)).min() > 2.0
    assert torch.equal(relax(b, crystal, Relaxation(steps=50)), crystal)  # no gradient, no move
    u = b.u1.clone()
    u[:, 1, :3] = u[:, 0, :3] + (b.t0[:, 0] - b.t0[:, 1]) + 0.3  # molecules 0 and 1 clash
    u[:, 2, :3] += 100.0  # molecule 2 far from everything
    out = relax(b, u, Relaxation(steps=50))
    assert not torch.equal(out[:, :2], u[:, :2])
    assert torch.equal(out[:, 2], u[:, 2])
    assert torch.equal(relax(b, u, Relaxation(steps=0)), u)


@pytest.mark.parametrize("bad", [dict(steps=-1), dict(distance=0.0), dict(lr=-0.1)])
def test_relaxation_settings_are_validated(bad):
    with pytest.raises(ValueError, match="out of range"):
        Relaxation(**bad)
