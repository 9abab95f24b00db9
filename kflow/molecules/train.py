"""Train and evaluate an assembly flow (rigid FM or K-Flow) with the shared loss and sampler.

x_0 is the start plus a little Gaussian noise in u (`start_noise`, Angstrom and radians), so that
repeated samples of one cluster differ and the best of several can be taken, as AssembleFlow
reports.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..config import ConfigError, build
from ..sampling import sample
from ..training.loss import FlowMatchingLoss
from .clusters import Cluster, pair
from .flow import FLOWS, AssemblyBatch, BoundAssembly, assembly_path, make_batch
from .metrics import AssemblyScores, score_assemblies
from .model import AssemblyNet, AssemblyNetConfig


@dataclass
class AssemblyConfig:
    flow: str = "kflow"  # rigid_fm | kflow
    num_bands: int = 3
    bump: str = "linear"
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    start_noise: float = 0.1
    pairing: str = "nearest"  # nearest | given: which crystal slot each start molecule flows to
    seed: int = 0
    net: AssemblyNetConfig = field(default_factory=AssemblyNetConfig)

    def __post_init__(self):
        from ..path import BUMPS
        from .clusters import PAIRINGS

        for key, value, options in [
            ("flow", self.flow, FLOWS),
            ("bump", self.bump, tuple(BUMPS)),
            ("pairing", self.pairing, PAIRINGS),
        ]:
            if value not in options:
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(options)}")
        for key, value, ok in [
            ("num_bands", self.num_bands, self.num_bands >= 1),
            ("steps", self.steps, self.steps >= 1),
            ("batch_size", self.batch_size, self.batch_size >= 1),
            ("lr", self.lr, self.lr > 0),
            ("start_noise", self.start_noise, self.start_noise >= 0),
        ]:
            if not ok:
                raise ConfigError(f"{key}={value!r} is out of range")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AssemblyConfig:
        """Typed and validated like the image configs (unknown keys and wrong types refused)."""
        return build(cls, d)


def collate(items: list[AssemblyBatch]) -> AssemblyBatch:
    """Concatenate single-cluster batches, padding atoms to the largest molecule."""
    A = max(b.numbers.shape[2] for b in items)

    def pad(t, dims):  # pad the atom axis (dim 2) with zeros
        return torch.nn.functional.pad(t, (0, 0) * (dims - 3) + (0, A - t.shape[2])) if t.shape[2] < A else t

    return AssemblyBatch(
        numbers=torch.cat([pad(b.numbers, 3) for b in items]),
        local=torch.cat([pad(b.local, 4) for b in items]),
        t0=torch.cat([b.t0 for b in items]),
        R0=torch.cat([b.R0 for b in items]),
        u1=torch.cat([b.u1 for b in items]),
        target=torch.cat([pad(b.target, 4) for b in items]),
    )


def train_assembly(
    clusters: list[Cluster], cfg: AssemblyConfig, out: str | Path | None = None, log=print
) -> AssemblyNet:
    clusters = pair(clusters, cfg.pairing)
    torch.manual_seed(cfg.seed)
    singles = [make_batch([c]) for c in clusters]
    net = AssemblyNet(cfg.net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, window = time.time(), []
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(singles), (cfg.batch_size,), generator=gen).tolist()
        b = collate([singles[i] for i in idx])
        path = assembly_path(b, cfg.flow, cfg.num_bands, cfg.bump)
        x_0 = cfg.start_noise * torch.randn(b.u1.shape, generator=gen)
        k = torch.rand(cfg.batch_size, generator=gen)
        out_loss = FlowMatchingLoss(path)(BoundAssembly(net, b), b.u1, x_0, k)
        opt.zero_grad(set_to_none=True)
        out_loss.loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        window.append(out_loss.loss.item())
        if step % max(cfg.steps // 10, 1) == 0 or step == cfg.steps:
            log(f"{cfg.flow} step {step}/{cfg.steps}: loss {sum(window) / len(window):.4f} ({time.time() - t0:.0f} s)")
            window = []
        if not torch.isfinite(out_loss.loss):
            raise ValueError(f"non-finite loss at step {step}; lower the learning rate")
    if out is not None:
        from safetensors.torch import save_file

        from ..utils.atomic import atomic_write, atomic_write_json

        out = Path(out)
        atomic_write(out / "model.safetensors", lambda tmp: save_file(net.state_dict(), str(tmp)))
        atomic_write_json(out / "config.json", cfg.to_dict())
    return net


@torch.no_grad()
def evaluate_assembly(
    net: AssemblyNet, clusters: list[Cluster], cfg: AssemblyConfig, samples: int = 5, steps: int = 20, seed: int = 0
) -> AssemblyScores:
    """Best of `samples` per cluster (metrics.py), Euler `steps` on the band grid. Clusters are
    grouped by molecule size, so no padded atom enters a distance matrix."""
    net.eval()
    groups: dict[int, list[Cluster]] = {}
    for c in pair(clusters, cfg.pairing):
        groups.setdefault(c.numbers.shape[1], []).append(c)
    results, n_total = [], 0
    for _, group in sorted(groups.items()):
        b = make_batch(group)
        path = assembly_path(b, cfg.flow, cfg.num_bands, cfg.bump)
        model = BoundAssembly(net, b)
        outs = []
        for s in range(samples):
            x_0 = cfg.start_noise * torch.randn(b.u1.shape, generator=torch.Generator().manual_seed(seed + s))
            u = sample(model, path, len(group), x_0=x_0, steps=steps, device="cpu", batch_size=len(group)).x
            outs.append(b.atoms(u))
        results.append((score_assemblies(torch.stack(outs), b.target), len(group)))
        n_total += len(group)
    avg = {
        f: sum(getattr(r, f) * n for r, n in results) / n_total
        for f in ("pm_atom", "pm_center", "collision_rate", "separation_rate")
    }
    return AssemblyScores(**avg, clusters=n_total, samples_per_cluster=samples)
