"""The cluster files: one safetensors file per split (flat arrays + offsets) and a JSON manifest.

The splits belong together: the manifest, written last, holds every split file's sha256, and a
reader refuses a split that does not match it. A rebuild killed half-way (or stopped by a full
disk) therefore leaves a set that is refused as a whole, never new train files beside old test ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.atomic import file_sha256
from ..utils.errors import DataError
from .clusters import Cluster
from .crystals import CLUSTER_SIZE


def save_clusters(out: str | Path, splits: dict[str, list[Cluster]], info: dict) -> None:
    import json

    import torch
    from safetensors.torch import save_file

    from ..utils.atomic import atomic_write, atomic_write_json

    out = Path(out)
    counts, sums = {}, {}
    (out / "manifest.json").unlink(missing_ok=True)  # the old set is no longer whole from here on
    for split, clusters in splits.items():
        sizes = np.array([c.numbers.shape[1] for c in clusters], dtype=np.int64)
        flat = lambda key: (
            np.concatenate([getattr(c, key).reshape(-1, *getattr(c, key).shape[2:]) for c in clusters])
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
        sums[split] = file_sha256(out / f"{split}.safetensors")
        counts[split] = {
            "clusters": len(clusters),
            "molecules": len({c.smiles for c in clusters}),
            "crystals": len({c.name for c in clusters}),
        }
    atomic_write_json(out / "manifest.json", dict(info, counts=counts, sha256=sums))


def _run_kind_of(folder: Path) -> str | None:
    """'image' / 'molecule' when folder is a kflow training run (its config.json says), else None."""
    import json

    from ..run_identity import run_kind

    try:
        return run_kind(json.loads((folder / "config.json").read_text()))
    except (OSError, ValueError):
        return None


def load_clusters(folder: str | Path, split: str) -> list[Cluster]:
    import json

    from ..utils.atomic import open_safetensors

    path = Path(folder) / f"{split}.safetensors"
    if not path.is_file():
        kind = _run_kind_of(Path(folder))
        if kind:  # a training run's folder given as data=: never suggest building a set into it
            raise DataError(
                f"data={folder} is {'an image' if kind == 'image' else 'a molecule'} training run, not a cluster "
                "set; set data= to a folder written by `kflow data molecules --out DIR`"
            )
        raise DataError(f"{path} does not exist; build the set with `kflow data molecules --out {folder}`")
    manifest = Path(folder) / "manifest.json"
    rebuild = f"rebuild it with `kflow data molecules --out {folder}`"
    try:
        sums = json.loads(manifest.read_text())["sha256"]
    except (OSError, ValueError, KeyError):
        raise DataError(f"{folder} has no complete manifest (a build was interrupted?); {rebuild}") from None
    if sums.get(split) != file_sha256(path):
        raise DataError(f"{path} does not belong to the set its manifest describes (a mixed build); {rebuild}")
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
