"""The typed config of an assembly run: flow, path, loss, optimisation, validation and data. It is
validated when built, saved as config.json in the run folder and reloads exactly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..path import KFlowPath
from ..utils.errors import ConfigError
from ..utils.typed_config import build
from .clusters import Cluster
from .flow import FLOWS, ROTATIONS, TARGETS, AssemblyBatch, assembly_path, assembly_schedule
from .model import AssemblyNetConfig

LR_SCHEDULES = ("constant", "cosine")


# what an out-of-range message adds: the rule the value broke
RULES = {
    "warmup": " (it must be below steps={cfg.steps}: the warm-up has to end before training does)",
    "lr": " (0 < lr < 1)",
    "ema": " (0 <= ema < 1)",
    "overlap": " (0: the hard path .. 1: flow matching)",
    "val_clusters": " (at least 1)",
}


@dataclass
class AssemblyConfig:
    flow: str = "kflow"  # rigid_fm | kflow
    num_bands: int = 3
    bump: str = "linear"
    overlap: float = 0.0  # band windows widened by this (0 = the hard path, kflow only)
    rotations: str = "graph"  # graph: rotations go band by band too | own: one band over all of k (kflow)
    target: str = "velocity"  # velocity | endpoint: what the network predicts
    rotation_weight: float = 1.0  # loss weight of the rotational part (AssembleFlow uses 10)
    k_density: str = "uniform"
    k_embedding: str = "k"  # k | window: the network also sees every band's local time (as for images)
    steps: int = 2000
    batch_size: int = 16
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (to 1% of lr at the last step)
    warmup: int = 0  # steps of linear warm-up
    ema: float = 0.0  # EMA decay of the weights sampled with, warmed up as (1 + step) / (10 + step) (0: raw weights)
    start_noise: float = 0.1
    pairing: str = "nearest"  # nearest | given: which crystal slot each start molecule flows to
    eval_every: int = 0  # score the validation clusters every this many steps and keep the best (0: off)
    val_clusters: int = 32  # how many validation clusters (the first ones)
    ckpt_every: int = 0  # resumable checkpoints every this many steps into the run folder (0: at the end)
    seed: int = 0
    data: str = "data/molecules"  # the cluster set (`kflow data molecules`), for the CLI
    max_atoms: int = 30  # molecules of at most this many atoms (the CPU budget; 0: all)
    device: str = "auto"  # auto (CUDA when there is one), cpu, cuda or cuda:N
    net: AssemblyNetConfig = field(default_factory=AssemblyNetConfig)

    def __post_init__(self):
        from ..path import BUMPS
        from .clusters import PAIRINGS

        for key, value, options in [
            ("flow", self.flow, FLOWS),
            ("bump", self.bump, tuple(BUMPS)),
            ("pairing", self.pairing, PAIRINGS),
            ("target", self.target, TARGETS),
            ("lr_schedule", self.lr_schedule, LR_SCHEDULES),
            ("k_density", self.k_density, ("uniform", "logit_normal")),
            ("k_embedding", self.k_embedding, ("k", "window")),
            ("rotations", self.rotations, ROTATIONS),
        ]:
            if value not in options:
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(options)}")
        for key, value, ok in [
            ("num_bands", self.num_bands, self.num_bands >= 1),
            ("steps", self.steps, self.steps >= 1),
            ("batch_size", self.batch_size, self.batch_size >= 1),
            ("lr", self.lr, 0 < self.lr < 1),
            ("start_noise", self.start_noise, self.start_noise >= 0),
            ("overlap", self.overlap, 0 <= self.overlap <= 1),
            ("rotation_weight", self.rotation_weight, self.rotation_weight >= 0),
            ("warmup", self.warmup, 0 <= self.warmup < self.steps),
            ("ema", self.ema, 0 <= self.ema < 1),
            ("eval_every", self.eval_every, self.eval_every >= 0),
            ("val_clusters", self.val_clusters, self.val_clusters >= 1),
            ("ckpt_every", self.ckpt_every, self.ckpt_every >= 0),
            ("max_atoms", self.max_atoms, self.max_atoms >= 0),
        ]:
            if not ok:
                rule = RULES.get(key, "")
                raise ConfigError(f"{key}={value!r} is out of range{rule.format(cfg=self)}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device={self.device!r} is not a device; use auto, cpu, cuda or cuda:N")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AssemblyConfig:
        """Typed and validated like the image configs (unknown keys and wrong types refused)."""
        return build(cls, d)

    def clusters(self, split: str) -> list[Cluster]:
        """The `split` clusters of the config's set, molecules of at most max_atoms atoms."""
        from .cluster_files import load_clusters

        out = load_clusters(self.data, split)
        return [c for c in out if not self.max_atoms or c.numbers.shape[1] <= self.max_atoms]

    def band_windows(self) -> list[list[float]]:
        """The bands' k-windows the network's k-embedding sees (k_embedding='window'), else none."""
        if self.k_embedding == "k":
            return []
        return assembly_schedule(self.flow, self.num_bands, self.bump, self.overlap, self.rotations).windows().tolist()

    def path(self, batch: AssemblyBatch) -> KFlowPath:
        return assembly_path(batch, self.flow, self.num_bands, self.bump, self.overlap, self.rotations)

    def lr_at(self, step: int) -> float:
        """The learning rate of step (1-based): linear warm-up, then constant or cosine to 1%."""
        if step <= self.warmup:
            return self.lr * step / self.warmup
        if self.lr_schedule == "constant":
            return self.lr
        done = (step - self.warmup) / max(self.steps - self.warmup, 1)
        return self.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done)))
