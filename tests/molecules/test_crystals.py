"""Cutting 17-molecule clusters from crystals: hand-made cells with known answers, then the real
pyxtal crystals when pyxtal and ase are installed."""

import numpy as np
import pytest

pytest.importorskip("ase")

from kflow.molecules.cluster_files import load_clusters, save_clusters  # noqa: E402
from kflow.molecules.clusters import Cluster, build_clusters, loose_start, pair, pair_nearest, split_of  # noqa: E402
from kflow.molecules.crystals import Crystal, CrystalSkipped, cut_clusters, whole_molecules  # noqa: E402


def diatomic_crystal(a=6.0):
    """A cubic cell with one H2 molecule whose atoms sit on opposite faces (bonded across the boundary)."""
    return Crystal("H2", "[H][H]", np.array([1, 1]), np.array([[0.2, 1.0, 1.0], [a - 0.2, 1.0, 1.0]]), np.eye(3) * a)


def test_molecules_come_out_whole_across_the_boundary():
    mols = whole_molecules(diatomic_crystal())
    assert len(mols) == 1
    pos, idx = mols[0]
    assert idx.tolist() == [0, 1]
    assert np.linalg.norm(pos[0] - pos[1]) == pytest.approx(0.4)


def test_cluster_of_a_cubic_lattice():
    """Centre + 6 face neighbours at a + the first 10 of the 12 edge neighbours at a*sqrt(2)."""
    a = 6.0
    ((nums, pos),) = cut_clusters(diatomic_crystal(a), centres=1)
    assert nums.shape == (17, 2) and pos.shape == (17, 2, 3)
    d = np.sort(np.linalg.norm(pos.mean(1) - pos[0].mean(0), axis=1))
    np.testing.assert_allclose(d, [0] + [a] * 6 + [a * np.sqrt(2)] * 10, atol=1e-9)
    # every copy is the same rigid molecule
    np.testing.assert_allclose(np.linalg.norm(pos[:, 0] - pos[:, 1], axis=1), 0.4, atol=1e-9)


def test_skips_mixed_crystals_and_networks():
    a = 6.0
    mixed = Crystal("mix", "x", np.array([1, 1, 8]), np.array([[0.2, 1, 1], [a - 0.2, 1, 1], [3, 3, 3]]), np.eye(3) * a)
    with pytest.raises(CrystalSkipped, match="^2 kinds of molecule$"):
        cut_clusters(mixed)
    chain = Crystal(
        "chain", "x", np.array([6]), np.array([[0.0, 0, 0]]), np.diag([1.4, 8, 8])
    )  # C bonded to its own image
    with pytest.raises(CrystalSkipped, match="^bonded network does not split into molecules$"):
        cut_clusters(chain)


def test_loose_start_is_a_rigid_motion_per_molecule():
    ((nums, pos),) = cut_clusters(diatomic_crystal(), centres=1)
    start = loose_start(pos, np.random.default_rng(0))
    for m in range(17):
        d0 = np.linalg.norm(pos[m, 0] - pos[m, 1])
        assert np.linalg.norm(start[m, 0] - start[m, 1]) == pytest.approx(d0)
    cent = start.mean(1)
    gaps = np.linalg.norm(cent[:, None] - cent[None], axis=-1) + np.eye(17) * 1e9
    assert gaps.min() >= 0.8 * 6.0 - 1e-9


def test_pair_nearest_minimises_the_squared_centroid_displacement():
    """Against brute force over all pairings of a small cluster (scipy's assignment does the work)."""
    import itertools

    ((nums, pos),) = cut_clusters(diatomic_crystal(), centres=1)
    nums, pos = nums[:6], pos[:6]
    rng = np.random.default_rng(3)
    start = loose_start(pos, rng) + rng.normal(0, 2.0, (6, 1, 3))
    c = pair_nearest(Cluster("H2", "[H][H]", nums, pos, start))
    c0, c1 = start.mean(1), pos.mean(1)
    best = min(((c0[list(p)] - c1) ** 2).sum() for p in itertools.permutations(range(6)))  # slot j <- start p[j]
    assert ((c.start.mean(1) - c1) ** 2).sum() == pytest.approx(best, abs=1e-9)


def test_pair_nearest_undoes_a_shuffle_and_keeps_rigid_copies():
    """Start molecules that sit next to a shuffled slot each: nearest pairing sends every slot its
    neighbour's pose, built from the slot's own atoms (a rigid copy, same atom order)."""
    ((nums, pos),) = cut_clusters(diatomic_crystal(), centres=1)
    rng = np.random.default_rng(1)
    shuffle = rng.permutation(17)
    start = loose_start(pos, rng)
    start = start - start.mean(1, keepdims=True) + pos.mean(1)[shuffle][:, None] + 0.3  # start i near slot shuffle[i]
    c = pair_nearest(Cluster("H2", "[H][H]", nums, pos, start))
    np.testing.assert_allclose(c.start.mean(1), pos.mean(1) + 0.3, atol=1e-12)
    for j in range(17):
        # slot j starts with the orientation of the start molecule that was next to it
        i = int(np.flatnonzero(shuffle == j)[0])
        np.testing.assert_allclose(c.start[j] - c.start[j].mean(0), start[i] - start[i].mean(0), atol=1e-12)
    assert pair([c], "given")[0] is c
    with pytest.raises(ValueError, match="pairing='closest'"):
        pair([c], "closest")


def test_split_is_by_molecule():
    assert split_of("CCO") == split_of("CCO")
    assert {split_of(f"C{'C' * i}O") for i in range(60)} == {"train", "val", "test"}


def test_real_crystals_build_and_cache(tmp_path):
    import importlib.util

    if importlib.util.find_spec("pyxtal") is None:  # only its data files are read; pyxtal is never imported
        pytest.skip("pyxtal is not installed (make test installs it)")
    from kflow.molecules.crystals import read_crystals

    crystals = read_crystals()
    assert len(crystals) >= 140
    splits, skipped = build_clusters(crystals[:40], centres=2, rotations=1, log=lambda *_: None)
    total = sum(len(v) for v in splits.values())
    assert total >= 40 and len(skipped) < 20
    smiles = {s: {c.smiles for c in v} for s, v in splits.items()}
    assert not (smiles["train"] & smiles["test"]) and not (smiles["train"] & smiles["val"])
    for c in splits["train"][:10]:
        # all 17 copies have the same atoms, intramolecular distances are those of the crystal
        assert len({tuple(sorted(n)) for n in c.numbers}) == 1
        for m in (0, 16):
            dt = np.linalg.norm(c.target[m][:, None] - c.target[m][None], axis=-1)
            ds = np.linalg.norm(c.start[m][:, None] - c.start[m][None], axis=-1)
            np.testing.assert_allclose(ds, dt, atol=1e-9)
        assert np.abs(c.target.reshape(-1, 3).mean(0)).max() < 1e-9  # centred
    save_clusters(tmp_path, splits, {"seed": 0})
    back = load_clusters(tmp_path, "train")
    assert len(back) == len(splits["train"])
    np.testing.assert_array_equal(back[3].target, splits["train"][3].target)
    np.testing.assert_array_equal(back[3].numbers, splits["train"][3].numbers)


def test_a_mixed_or_unfinished_build_is_refused(tmp_path):
    """A rebuild stopped after its train split: the new train file beside the old val/test files is
    refused as a whole, and so is a folder whose manifest never got written."""
    from kflow.utils.errors import DataError

    clusters = [
        Cluster(
            "x",
            "C",
            np.ones((17, 2), dtype=np.int64),
            np.random.default_rng(i).normal(size=(17, 2, 3)),
            np.zeros((17, 2, 3)),
        )
        for i in range(3)
    ]
    out = tmp_path / "set"
    save_clusters(out, {"train": clusters[:2], "test": clusters[2:]}, {"source": "test"})
    assert len(load_clusters(out, "train")) == 2
    old_test = (out / "test.safetensors").read_bytes()
    save_clusters(out, {"train": clusters[1:], "test": clusters[:1]}, {"source": "test"})  # a second build ...
    (out / "test.safetensors").write_bytes(old_test)  # ... whose test split is the first build's
    with pytest.raises(DataError, match="does not belong to the set"):
        load_clusters(out, "test")
    assert len(load_clusters(out, "train")) == 2
    (out / "manifest.json").unlink()
    with pytest.raises(DataError, match="no complete manifest"):
        load_clusters(out, "train")
