"""The assembly task built from crystal cuts: start poses (every molecule rotated uniformly at
random about its centroid, its centroid redrawn uniformly in a box around the cluster at least
`min_gap` from the others), the pairing of start molecules to crystal slots, and splits by
molecule (SMILES), not at random."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .crystals import Crystal, CrystalSkipped, cut_clusters
from .rigid import overlay_starts, overlays, random_rotations


@dataclass
class Cluster:
    name: str
    smiles: str
    numbers: np.ndarray  # (17, A) atomic numbers per molecule (copies may list atoms in other orders)
    target: np.ndarray  # (17, A, 3) crystal packing, centred on the cluster's centroid
    start: np.ndarray  # (17, A, 3) loose start: molecules rotated and moved (same atom order)


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


def pair_aligned(c: Cluster, turns: int = 256) -> Cluster:
    """`pair_nearest` after turning the whole crystal cluster about its centre to the orientation
    whose slots lie nearest the start's molecules (the overlay of least squared displacement).
    The crystal's orientation carries no information (each cut cluster is turned at random, and the
    start is drawn without regard to it), so it is ours to choose, as which copy goes to which slot
    is: this choice makes each start's target the nearest crystal the start allows, a function of
    the start that a network can learn, where the nearest pairing leaves the orientation to chance."""
    p, q = c.start.mean(1), c.target.mean(1)  # (M, 3) centres
    here, mid = p.mean(0), q.mean(0)
    p, q = p - here, q - mid
    _, R, _ = min(overlays(p, q, overlay_starts(p, q, turns)), key=lambda o: o[2])
    # the crystal turned and centred where the start is (its position is as arbitrary as its turn)
    return pair_nearest(Cluster(c.name, c.smiles, c.numbers, (c.target - mid) @ R.T + here, c.start))


PAIRINGS = ("nearest", "given", "aligned")


def pair(clusters: list[Cluster], pairing: str) -> list[Cluster]:
    """nearest: `pair_nearest` on every cluster; aligned: `pair_aligned`; given: the random pairing
    the clusters were cut with."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing={pairing!r}: use one of {', '.join(PAIRINGS)}")
    if pairing == "given":
        return list(clusters)
    return [(pair_nearest if pairing == "nearest" else pair_aligned)(c) for c in clusters]


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
        try:
            cut = cut_clusters(c, centres)
        except CrystalSkipped as e:
            skipped[c.name] = str(e)
            continue
        for nums, pos in cut:
            for _ in range(rotations):  # random global rotations of the whole cluster
                R = random_rotations(1, rng)[0]
                target = (pos - pos.reshape(-1, 3).mean(0)) @ R.T
                splits[split_of(c.smiles)].append(Cluster(c.name, c.smiles, nums, target, loose_start(target, rng)))
    return splits, skipped
