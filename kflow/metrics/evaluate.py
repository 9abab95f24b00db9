"""FD / precision / recall of samples against a dataset split, in the features of a classifier,
with the reference features cached per (dataset, split, classifier)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .classifier import FeatureClassifier
from .frechet import FeatureStats, frechet_distance, precision_recall


def cache_dir() -> Path:
    return Path(os.environ.get("KFLOW_CACHE", Path.home() / ".cache" / "kflow"))


def classifier_digest(path: str | Path) -> str:
    h = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return h[:16]


def reference_features(
    classifier: FeatureClassifier,
    classifier_path: str | Path,
    dataset: str,
    split: str = "test",
    root: str | None = None,
    image_size: int | None = 32,
) -> tuple[Tensor, Tensor | None]:
    """Features (and labels) of a real split; cached as safetensors under KFLOW_CACHE with a checksum
    of every tensor. A cache file that is truncated or altered is recomputed (and says so), never
    used: its bytes would change the FD without a word."""
    from safetensors.torch import save_file

    from ..data import load_dataset
    from ..utils.atomic import atomic_write
    from ..utils.checkpoint import digest

    name = f"ref-{dataset}-{split}-{image_size}-{classifier_digest(classifier_path)}.safetensors"
    path = cache_dir() / "refstats" / name
    if path.exists():
        cached = _read_checked(path)
        if cached is not None:
            return cached.get("features"), cached.get("labels")
        print(f"the cached reference features {path} are damaged; recomputing them")
    data = load_dataset(dataset, split, root, image_size)
    feats = classifier.embed(data.x)
    tensors = {"features": feats.contiguous()}
    if data.y is not None:
        tensors["labels"] = data.y.contiguous()
    meta = {f"digest.{k}": digest(v) for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return feats, data.y


def _read_checked(path: Path) -> dict | None:
    """The tensors of a cache file whose every tensor matches its stored checksum, else None."""
    from ..utils.atomic import open_safetensors
    from ..utils.checkpoint import digest

    try:
        with open_safetensors(path) as f:
            meta = f.metadata() or {}
            out = {k: f.get_tensor(k) for k in f.keys()}
    except (ValueError, OSError):
        return None
    if "features" not in out or any(meta.get(f"digest.{k}") != digest(v) for k, v in out.items()):
        return None
    return out


@dataclass
class Scores:
    fd: float
    precision: float
    recall: float
    n_fake: int
    n_real: int
    neighbours: int = 3  # k of the k-nearest-neighbour balls behind precision and recall

    def row(self) -> dict:
        return asdict(self)


def score_features(fake: Tensor, real: Tensor, neighbours: int = 3, pr_max: int = 10000) -> Scores:
    fd = frechet_distance(FeatureStats.of(fake.numpy()), FeatureStats.of(real.numpy()))
    g = torch.Generator().manual_seed(0)  # P/R on at most pr_max points each (O(N^2) distances)
    fr = fake[torch.randperm(len(fake), generator=g)[:pr_max]]
    rr = real[torch.randperm(len(real), generator=g)[:pr_max]]
    pr = precision_recall(rr, fr, neighbours)
    return Scores(
        fd=fd, precision=pr.precision, recall=pr.recall, n_fake=len(fake), n_real=len(real), neighbours=neighbours
    )


def per_class_fd(fake: Tensor, fake_labels: Tensor, real: Tensor, real_labels: Tensor) -> dict[int, float]:
    out = {}
    for c in sorted(set(fake_labels.tolist())):
        f, r = fake[fake_labels == c], real[real_labels == c]
        out[c] = frechet_distance(FeatureStats.of(f.numpy()), FeatureStats.of(r.numpy()))
    return out


def cdr(fd_dropped: dict[int, float], fd_full: dict[int, float]) -> float:
    """Conditional discrimination ratio (docs/maths.md): mean over classes of FD_dropped(c) / FD_full(c);
    1 is ideal, larger means dropping the class late loses class identity."""
    if set(fd_dropped) != set(fd_full) or not fd_full:
        raise ValueError("CDR needs per-class FDs for the same classes in both settings")
    return float(np.mean([fd_dropped[c] / fd_full[c] for c in fd_full]))


def format_table(rows: list[dict], keys: list[str]) -> str:
    head = "| " + " | ".join(keys) + " |"
    sep = "|" + "|".join("---" for _ in keys) + "|"
    body = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])
