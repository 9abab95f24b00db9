"""The typed config of an assembly run: flow, path, loss, optimisation, validation and data. It is
validated when built, saved as config.json in the run folder and reloads exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..config import TrainConfig, validate_train
from ..path import KFlowPath
from ..utils.errors import ConfigError
from ..utils.typed_config import build
from .clusters import Cluster
from .flow import FLOWS, ROTATIONS, TARGETS, AssemblyBatch, assembly_path, assembly_schedule
from .model import AssemblyNetConfig

# what an out-of-range message adds: the rule the value broke
RULES = {
    "overlap": " (0: the hard path .. 1: flow matching)",
    "val_clusters": " (at least 1)",
}
# the train section's settings that only image runs use: a molecule run refuses them changed
IMAGE_ONLY = (
    "band_loss_weights",
    "cond_aug",
    "label_dropout",
    "stage_batches",
    "stage_share",
    "stage_calls",
    "sample_every",
    "amp",
    "compile",
    "max_minutes",
)


def assembly_train() -> TrainConfig:
    """The train section's defaults for assembly runs (the image training loop's own settings)."""
    return TrainConfig(steps=2000, batch_size=16, lr=1e-3, warmup=0, weight_decay=0.01, ema_decay=0.0, ckpt_every=500)


@dataclass
class AssemblyConfig:
    flow: str = "kflow"  # rigid_fm | kflow
    num_bands: int = 3
    bump: str = "linear"
    overlap: float = 0.0  # band windows widened by this (0 = the hard path, kflow only)
    rotations: str = "graph"  # graph: rotations go band by band too | own: one band over all of k (kflow)
    target: str = "velocity"  # velocity | endpoint: what the network predicts
    rotation_weight: float = 1.0  # loss weight of the rotational part (AssembleFlow uses 10)
    # target=endpoint: loss weight of the clash penalty on the predicted final atoms (metrics.clash_penalty;
    # 0: off), pairs of atoms of two molecules closer than steric_distance Angstrom
    steric_weight: float = 0.0
    steric_distance: float = 1.5
    k_embedding: str = "k"  # k | window: the network also sees every band's local time (as for images)
    start_noise: float = 0.1
    # aligned: the crystal turned onto the start, then paired by nearest slots (the learnable task);
    # nearest: the crystal as cut, paired by nearest slots (the paper-comparable task); given: as cut
    pairing: str = "aligned"
    eval_every: int = 0  # score the validation clusters every this many steps and keep the best (0: off)
    val_clusters: int = 32  # how many validation clusters (the first ones)
    data: str = "data/molecules"  # the cluster set (`kflow data molecules`), for the CLI
    max_atoms: int = 30  # molecules of at most this many atoms (the CPU budget; 0: all)
    net: AssemblyNetConfig = field(default_factory=AssemblyNetConfig)
    out_dir: str = "runs/molecules/default"  # the run folder (`kflow molecules train`)
    # the optimisation, as for images (kflow train's train section): steps, batch, lr and its
    # schedule, clipping, EMA, the non-finite rule, checkpoints, seed, device, the k-density
    train: TrainConfig = field(default_factory=assembly_train)

    def __post_init__(self):
        from ..path import BUMPS
        from .clusters import PAIRINGS

        for key, value, options in [
            ("flow", self.flow, FLOWS),
            ("bump", self.bump, tuple(BUMPS)),
            ("pairing", self.pairing, PAIRINGS),
            ("target", self.target, TARGETS),
            ("k_embedding", self.k_embedding, ("k", "window")),
            ("rotations", self.rotations, ROTATIONS),
        ]:
            if value not in options:
                raise ConfigError(f"{key}={value!r} is not one of {', '.join(options)}")
        for key, value, ok in [
            ("num_bands", self.num_bands, self.num_bands >= 1),
            ("start_noise", self.start_noise, self.start_noise >= 0),
            ("overlap", self.overlap, 0 <= self.overlap <= 1),
            ("rotation_weight", self.rotation_weight, self.rotation_weight >= 0),
            ("steric_weight", self.steric_weight, self.steric_weight >= 0),
            ("steric_distance", self.steric_distance, self.steric_distance > 0),
            ("eval_every", self.eval_every, self.eval_every >= 0),
            ("val_clusters", self.val_clusters, self.val_clusters >= 1),
            ("max_atoms", self.max_atoms, self.max_atoms >= 0),
        ]:
            if not ok:
                rule = RULES.get(key, "")
                raise ConfigError(f"{key}={value!r} is out of range{rule}")
        if self.steric_weight and self.target != "endpoint":
            raise ConfigError(
                "steric_weight needs target=endpoint: the clash is measured on the network's predicted final poses"
            )
        t = self.train
        validate_train(t)
        if t.k_density not in ("uniform", "logit_normal"):
            raise ConfigError(f"train.k_density={t.k_density!r} is not one of uniform, logit_normal")
        if not t.warmup < t.steps:
            raise ConfigError(f"train.warmup={t.warmup} must be below train.steps={t.steps}")
        if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
            raise ConfigError(f"train.device={t.device!r} is not a device; use auto, cpu, cuda or cuda:N")
        plain = TrainConfig()
        for f in fields(TrainConfig):
            if f.name in IMAGE_ONLY and getattr(t, f.name) != getattr(plain, f.name):
                raise ConfigError(f"train.{f.name} concerns image runs; leave it out of a molecule config")

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
