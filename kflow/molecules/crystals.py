"""Molecular clusters cut from real crystals, like COD-Cluster17.

Source: the organic molecular crystals that the PyPI package `pyxtal` ships as ASE databases
(database/test.db and database/mech.db, about 150 structures with full unit cells), read with
`ase.db` from the installed package at run time; nothing of them is stored in this repository.

For each crystal: find the molecules (covalent bonds within 1.1 x the sum of covalent radii,
followed across periodic boundaries so that each molecule comes out whole), skip the crystal
when its molecules are not all the same kind or a bonded network never closes (a polymer or a
network we cannot split), tile the cell, and for each chosen centre molecule keep it and its 16
nearest molecules by centroid. Start positions (what the flow starts from): every molecule
rotated uniformly at random about its centroid and its centroid redrawn uniformly in a box around
the cluster, at least `min_gap` from the others. Splits are by molecule (SMILES), not at random.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.errors import DataError

CLUSTER_SIZE = 17


@dataclass
class Crystal:
    name: str
    smiles: str
    numbers: np.ndarray  # (n,) atomic numbers
    positions: np.ndarray  # (n, 3) Cartesian, Angstrom
    cell: np.ndarray  # (3, 3) rows = lattice vectors


@dataclass
class Cluster:
    name: str
    smiles: str
    numbers: np.ndarray  # (17, A) atomic numbers per molecule (copies may list atoms in other orders)
    target: np.ndarray  # (17, A, 3) crystal packing, centred on the cluster's centroid
    start: np.ndarray  # (17, A, 3) loose start: molecules rotated and moved (same atom order)


def pyxtal_databases() -> list[Path]:
    spec = importlib.util.find_spec("pyxtal")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the crystal source is the PyPI package pyxtal: pip install --no-deps pyxtal ase (make test installs both)"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "database"
    dbs = [root / "test.db", root / "mech.db"]
    missing = [str(p) for p in dbs if not p.is_file()]
    if missing:
        raise DataError(
            f"pyxtal is installed but {missing[0]} is missing; reinstall it: pip install --no-deps "
            "--force-reinstall pyxtal"
        )
    return dbs


def read_crystals() -> list[Crystal]:
    try:
        from ase.db import connect
    except ImportError:
        raise ImportError("molecular data needs ase: pip install ase") from None
    out = []
    for db in pyxtal_databases():
        for row in connect(str(db)).select():
            a = row.toatoms()
            out.append(
                Crystal(
                    str(row.get("csd_code", row.id)),
                    str(row.get("mol_smi", "")),
                    a.numbers.copy(),
                    a.positions.copy(),
                    np.array(a.cell),
                )
            )
    return out


def covalent_bonds(c: Crystal, mult: float = 1.1):
    """Bonded pairs (i, j, shift): atom j moved by shift (in cells) is bonded to atom i."""
    from ase import Atoms
    from ase.neighborlist import natural_cutoffs, neighbor_list

    atoms = Atoms(numbers=c.numbers, positions=c.positions, cell=c.cell, pbc=True)
    return neighbor_list("ijS", atoms, natural_cutoffs(atoms, mult=mult))


def whole_molecules(c: Crystal) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Each molecule as (positions (A, 3) unwrapped across the cell boundaries, atom indices in the
    crystal's list); None when a bonded network wraps onto itself (not a molecule)."""
    i_s, j_s, S = covalent_bonds(c)
    nbrs = [[] for _ in range(len(c.numbers))]
    for i, j, s in zip(i_s, j_s, S):
        nbrs[i].append((j, s))
    offset = np.full((len(c.numbers), 3), np.iinfo(np.int64).min, dtype=np.int64)
    molecules = []
    for seed in range(len(c.numbers)):
        if offset[seed, 0] != np.iinfo(np.int64).min:
            continue
        offset[seed] = 0
        members, stack = [seed], [seed]
        while stack:
            i = stack.pop()
            for j, s in nbrs[i]:
                want = offset[i] + s
                if offset[j, 0] == np.iinfo(np.int64).min:
                    offset[j] = want
                    members.append(j)
                    stack.append(j)
                elif not np.array_equal(offset[j], want):
                    return None  # the network reaches an atom in two different cells
        members = np.asarray(sorted(members))
        molecules.append((c.positions[members] + offset[members] @ c.cell, members))
    return molecules


def _formula(numbers: np.ndarray) -> tuple:
    return tuple(sorted(numbers.tolist()))


def cut_clusters(c: Crystal, centres: int = 4, reach: int = 3) -> list[tuple[np.ndarray, np.ndarray]] | str:
    """Clusters of 17 molecules as (numbers (17, A), positions (17, A, 3)) around up to `centres`
    molecules of the home cell, or a string saying why the crystal is skipped."""
    mols = whole_molecules(c)
    if mols is None:
        return "bonded network does not split into molecules"
    kinds = {_formula(c.numbers[idx]) for _, idx in mols}
    if len(kinds) != 1:
        return f"{len(kinds)} kinds of molecule"
    if len(mols[0][1]) < 2:
        return "single atoms, not molecules"
    r = np.arange(-reach, reach + 1)
    shifts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) @ c.cell  # (S, 3)
    pos = np.stack([p for p, _ in mols])  # (M, A, 3)
    nums = np.stack([c.numbers[idx] for _, idx in mols])  # (M, A)
    cent = pos.mean(1)  # (M, 3)
    all_cent = (cent[None] + shifts[:, None]).reshape(-1, 3)  # (S*M, 3) image-major
    home = (len(shifts) // 2) * len(mols)  # the zero shift
    out = []
    for m in range(min(centres, len(mols))):
        d = np.linalg.norm(all_cent - cent[m], axis=1)
        order = np.lexsort((np.arange(len(d)), np.round(d, 6)))[:CLUSTER_SIZE]  # ties: lowest index first
        if order[0] != home + m:
            return "centre molecule is not its own nearest (overlapping images)"
        s_idx, m_idx = np.divmod(order, len(mols))
        out.append((nums[m_idx], pos[m_idx] + shifts[s_idx][:, None]))
    return out


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) uniform on SO(3) (QR of a Gaussian matrix with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def loose_start(
    target: np.ndarray, rng: np.random.Generator, box_scale: float = 1.5, min_gap: float | None = None
) -> np.ndarray:
    """Each molecule of a (17, A, 3) cluster rotated about its centroid and its centroid redrawn
    uniformly in a cube `box_scale` times the cluster's centroid extent, keeping centroids apart."""
    cent = target.mean(1)  # (M, 3)
    half = box_scale * np.abs(cent - cent.mean(0)).max()
    if min_gap is None:
        d = np.linalg.norm(cent[:, None] - cent[None], axis=-1) + np.eye(len(cent)) * 1e9
        min_gap = 0.8 * d.min()
    new = []
    for _ in range(len(cent)):
        for _attempt in range(1000):
            p = cent.mean(0) + rng.uniform(-half, half, 3)
            if all(np.linalg.norm(p - q) >= min_gap for q in new):
                break
        new.append(p)
    R = random_rotations(len(cent), rng)
    local = target - cent[:, None]
    return np.einsum("mij,maj->mai", R, local) + np.stack(new)[:, None]


def pair_nearest(c: Cluster) -> Cluster:
    """The same cluster with its start poses re-assigned to the crystal slots so that the sum of
    squared centroid displacements is smallest. The 17 molecules are copies of one molecule, so
    which copy goes to which slot is arbitrary; cutting the clusters pairs them at random, which
    leaves the velocity at k = 0 nearly uninformative (every slot is as likely for every molecule).

    Slot j then starts at the centroid and orientation of the start molecule matched to it, with its
    own atoms (copies may list atoms in different orders, so atoms never move between slots)."""
    import torch
    from scipy.optimize import linear_sum_assignment

    from .rigid import kabsch

    c0, c1 = c.start.mean(1), c.target.mean(1)  # (M, 3)
    _, col = linear_sum_assignment(((c0[:, None] - c1[None]) ** 2).sum(-1))  # start i -> slot col[i]
    # start i is target i rigidly rotated (loose_start): recover each rotation, apply it to slot col[i]
    a, b = torch.from_numpy(c.target - c1[:, None]), torch.from_numpy(c.start)
    R = kabsch(a, b, torch.ones(a.shape[:2], dtype=torch.bool)).numpy()  # (M, 3, 3): b - c0 ~ a @ R.T
    start = np.empty_like(c.start)
    for i, j in enumerate(col):
        start[j] = (c.target[j] - c1[j]) @ R[i].T + c0[i]
    return Cluster(c.name, c.smiles, c.numbers, c.target, start)


PAIRINGS = ("nearest", "given")


def pair(clusters: list[Cluster], pairing: str) -> list[Cluster]:
    """nearest: `pair_nearest` on every cluster; given: the random pairing the clusters were cut with."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing={pairing!r}: use one of {', '.join(PAIRINGS)}")
    return [pair_nearest(c) for c in clusters] if pairing == "nearest" else list(clusters)


def split_of(smiles: str) -> str:
    """train / val / test by a hash of the SMILES: every crystal of a molecule lands in one split."""
    h = int(hashlib.sha256(smiles.encode()).hexdigest(), 16) % 10
    return "test" if h == 0 else "val" if h == 1 else "train"


def build_clusters(
    crystals: list[Crystal], centres: int = 4, rotations: int = 4, seed: int = 0, log=print
) -> tuple[dict[str, list[Cluster]], dict[str, str]]:
    """All clusters by split, and the reason each skipped crystal was skipped."""
    rng = np.random.default_rng(seed)
    splits: dict[str, list[Cluster]] = {"train": [], "val": [], "test": []}
    skipped = {}
    for c in crystals:
        cut = cut_clusters(c, centres)
        if isinstance(cut, str):
            skipped[c.name] = cut
            continue
        for nums, pos in cut:
            for _ in range(rotations):  # random global rotations of the whole cluster
                R = random_rotations(1, rng)[0]
                target = (pos - pos.reshape(-1, 3).mean(0)) @ R.T
                splits[split_of(c.smiles)].append(Cluster(c.name, c.smiles, nums, target, loose_start(target, rng)))
    return splits, skipped


# ---- cache: one safetensors file per split (flat arrays + offsets) and a JSON manifest ----------
def save_clusters(out: str | Path, splits: dict[str, list[Cluster]], info: dict) -> None:
    import json

    import torch
    from safetensors.torch import save_file

    from ..utils.atomic import atomic_write, atomic_write_json

    out = Path(out)
    counts = {}
    for split, clusters in splits.items():
        sizes = np.array([c.numbers.shape[1] for c in clusters], dtype=np.int64)
        flat = lambda key: (
            np.concatenate(
                [
                    getattr(c, key).reshape(-1, *getattr(c, key).shape[2:])  # noqa: E731
                    for c in clusters
                ]
            )
            if clusters
            else np.zeros((0, 3))
        )
        tensors = {
            "atoms_per_molecule": torch.from_numpy(sizes),
            "numbers": torch.from_numpy(flat("numbers").astype(np.int64).reshape(-1)),
            "target": torch.from_numpy(flat("target").astype(np.float64).reshape(-1, 3)),
            "start": torch.from_numpy(flat("start").astype(np.float64).reshape(-1, 3)),
        }
        meta = {"names": json.dumps([c.name for c in clusters]), "smiles": json.dumps([c.smiles for c in clusters])}
        atomic_write(out / f"{split}.safetensors", lambda tmp, t=tensors, m=meta: save_file(t, str(tmp), metadata=m))
        counts[split] = {
            "clusters": len(clusters),
            "molecules": len({c.smiles for c in clusters}),
            "crystals": len({c.name for c in clusters}),
        }
    atomic_write_json(out / "manifest.json", dict(info, counts=counts))


def load_clusters(folder: str | Path, split: str) -> list[Cluster]:
    import json

    from ..utils.atomic import open_safetensors

    path = Path(folder) / f"{split}.safetensors"
    if not path.is_file():
        raise DataError(f"{path} does not exist; build the set with `kflow data molecules --out {folder}`")
    with open_safetensors(path) as f:
        meta = f.metadata()
        sizes = f.get_tensor("atoms_per_molecule").numpy()
        arrays = {k: f.get_tensor(k).numpy() for k in ("numbers", "target", "start")}
    names, smiles = json.loads(meta["names"]), json.loads(meta["smiles"])
    out, at = [], 0
    for name, smi, A in zip(names, smiles, sizes):
        n = CLUSTER_SIZE * int(A)
        sl = slice(at, at + n)
        out.append(
            Cluster(
                name,
                smi,
                arrays["numbers"][sl].reshape(CLUSTER_SIZE, A),
                arrays["target"][sl].reshape(CLUSTER_SIZE, A, 3),
                arrays["start"][sl].reshape(CLUSTER_SIZE, A, 3),
            )
        )
        at += n
    return out
