"""Crystals and the clusters cut from them (like COD-Cluster17): reading the crystal databases,
finding whole molecules, cutting a centre molecule's 16 nearest neighbours. The task built from
these cuts (start poses, pairing, splits) is clusters.py; its files are cluster_files.py.

Source: the organic molecular crystals that the PyPI package `pyxtal` ships as ASE databases
(database/test.db and database/mech.db, about 150 structures with full unit cells), read with
`ase.db` from the installed package at run time; nothing of them is stored in this repository.

For each crystal: find the molecules (covalent bonds within 1.1 x the sum of covalent radii,
followed across periodic boundaries so that each molecule comes out whole), skip the crystal
when its molecules are not all the same kind or a bonded network never closes (a polymer or a
network we cannot split), tile the cell, and for each chosen centre molecule keep it and its 16
nearest molecules by centroid.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..utils.errors import DataError

CLUSTER_SIZE = 17  # a centre molecule and its 16 nearest


@dataclass
class Crystal:
    name: str
    smiles: str
    numbers: np.ndarray  # (n,) atomic numbers
    positions: np.ndarray  # (n, 3) Cartesian, Angstrom
    cell: np.ndarray  # (3, 3) rows = lattice vectors


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


MAX_CIF_SITES = 5000  # ASE's CIF reader is quadratic in the listed sites: 5184 take ~73 s, 78k ~4 h


def count_atom_sites(path: Path) -> int:
    """Rows of a CIF's _atom_site loop (the listed sites, before symmetry): a cheap size check."""
    count, in_loop, sites = 0, False, False
    with open(path, errors="replace") as f:
        for line in f:
            t = line.strip()
            if t.lower().startswith("loop_"):
                in_loop, sites = True, False
            elif t.startswith("_"):
                if not in_loop:
                    sites = False
                sites = sites or (t.lower().startswith("_atom_site_") and not t.lower().startswith("_atom_site_aniso"))
            elif t and not t.startswith("#"):
                if t.lower().startswith("data_"):
                    in_loop, sites = False, False
                elif sites:
                    count += 1
                    in_loop = False  # the header is over: the rows follow
    return count


def read_cif_folder(folder: str | Path, log=print, max_sites: int = MAX_CIF_SITES) -> list[Crystal]:
    """Every *.cif file of a folder (e.g. COD entries) as a Crystal, named after the file. A file
    that ASE cannot read as one periodic structure is skipped with one line saying why, and so is
    one listing more than `max_sites` atom sites (ASE would take hours); a folder with no usable
    file is refused. A progress line every 50 files. The molecule key used to split train/val/test is the
    crystal's empirical formula (CIFs carry no SMILES): polymorphs of one molecule share a split."""
    try:
        from ase.io import read
    except ImportError:
        raise ImportError("molecular data needs ase: pip install ase") from None
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--cifs {folder} is not a folder; give a folder of .cif files")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".cif")
    if not files:
        raise DataError(f"--cifs {folder} holds no .cif files; put the crystal files there")
    out = []
    for i, f in enumerate(files):
        if i and i % 50 == 0:
            log(f"read {i}/{len(files)} CIF files ({len(out)} usable)")
        n_sites = count_atom_sites(f)
        if n_sites > max_sites:
            log(
                f"skipped {f.name}: {n_sites} atom sites, more than {max_sites} (ASE's CIF reader is quadratic "
                f"in them); give the asymmetric unit or raise --max-cif-sites"
            )
            continue
        try:
            structures = read(str(f), index=":", format="cif")
        except Exception as e:  # ASE raises many kinds for malformed files; each becomes one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
            log(f"skipped {f.name}: not a readable CIF ({first})")
            continue
        if len(structures) != 1:
            log(f"skipped {f.name}: {len(structures)} data blocks; give one crystal per file")
            continue
        a = structures[0]
        if not a.pbc.all() or abs(np.linalg.det(np.array(a.cell))) < 1e-6 or len(a) == 0:
            log(f"skipped {f.name}: no full unit cell with atoms (a CIF of a crystal is needed)")
            continue
        formula = a.get_chemical_formula(mode="hill", empirical=True)
        out.append(Crystal(f.stem, formula, a.numbers.copy(), a.positions.copy(), np.array(a.cell)))
    if not out:
        raise DataError(f"no usable crystal in {folder} (every .cif file was skipped; see the lines above)")
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


class CrystalSkipped(DataError):
    """A crystal no cluster can be cut from; the message says why."""


def cut_clusters(c: Crystal, centres: int = 4, reach: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Clusters of 17 molecules as (numbers (17, A), positions (17, A, 3)) around up to `centres`
    molecules of the home cell. CrystalSkipped says why a crystal gives none."""
    mols = whole_molecules(c)
    if mols is None:
        raise CrystalSkipped("bonded network does not split into molecules")
    kinds = {_formula(c.numbers[idx]) for _, idx in mols}
    if len(kinds) != 1:
        raise CrystalSkipped(f"{len(kinds)} kinds of molecule")
    if len(mols[0][1]) < 2:
        raise CrystalSkipped("single atoms, not molecules")
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
            raise CrystalSkipped("centre molecule is not its own nearest (overlapping images)")
        s_idx, m_idx = np.divmod(order, len(mols))
        out.append((nums[m_idx], pos[m_idx] + shifts[s_idx][:, None]))
    return out
