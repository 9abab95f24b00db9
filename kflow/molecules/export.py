"""Generated clusters as files a chemist opens: extended XYZ and CIF (through ASE), and a picture
of generated against crystal clusters.

A cluster is not periodic, so its CIF gets a box cell around it with `VACUUM` Angstrom on every
side (images never touch), and each atom's molecule index is kept as its tag (extended XYZ writes
it as a column). Padding atoms (atomic number 0) are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write

VACUUM = 10.0  # Angstrom of empty space around a cluster in its CIF box


def cluster_atoms(numbers: np.ndarray, positions: np.ndarray, name: str = ""):
    """numbers (M, A), positions (M, A, 3) -> ase.Atoms (padding dropped, tag = molecule index), in
    a box cell with VACUUM around it, positions moved into the box."""
    from ase import Atoms

    keep = numbers.reshape(-1) > 0
    tags = np.repeat(np.arange(numbers.shape[0]), numbers.shape[1])[keep]
    pos = positions.reshape(-1, 3)[keep]
    lo, hi = pos.min(0), pos.max(0)
    atoms = Atoms(numbers=numbers.reshape(-1)[keep], positions=pos - lo + VACUUM, tags=tags, pbc=True)
    atoms.set_cell(np.diag(hi - lo + 2 * VACUUM))
    atoms.info["name"] = name
    return atoms


def write_cluster(stem: str | Path, numbers: np.ndarray, positions: np.ndarray, name: str = "") -> list[Path]:
    """{stem}.xyz (extended XYZ) and {stem}.cif, each written atomically; the paths written."""
    from ase.io import write

    atoms = cluster_atoms(numbers, positions, name)
    out = []
    for fmt, suffix in (("extxyz", ".xyz"), ("cif", ".cif")):
        path = Path(f"{stem}{suffix}")
        atomic_write(path, lambda tmp, f=fmt: write(str(tmp), atoms, format=f))
        out.append(path)
    return out


def picture(pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], out: str | Path) -> None:
    """A PNG with one column per cluster: generated (top) over crystal (bottom), molecule centres
    coloured by molecule and atoms as small dots. pairs: (title, numbers (M, A), generated
    (M, A, 3), crystal (M, A, 3))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(pairs)
    fig = plt.figure(figsize=(3.2 * n, 6.4))
    for col, (title, numbers, gen, crystal) in enumerate(pairs):
        mask = numbers > 0
        centre = crystal.reshape(-1, 3)[mask.reshape(-1)].mean(0)
        both = np.concatenate([gen[mask], crystal[mask]]) - centre
        lim = np.abs(both).max()  # one scale for both rows of a column
        for row, (label, pos) in enumerate((("generated", gen), ("crystal", crystal))):
            ax = fig.add_subplot(2, n, row * n + col + 1, projection="3d")
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_zlim(-lim, lim)
            colours = plt.cm.tab20(np.linspace(0, 1, len(pos)))
            for m in range(len(pos)):
                p = pos[m][mask[m]] - centre
                ax.scatter(*p.T, s=4, color=colours[m], alpha=0.6)
            ax.set_title(f"{title}\n{label}" if row == 0 else label, fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
