"""Typed run configuration: dataclasses validated on load, saved and reloaded exactly (JSON/YAML).

An unknown key, a wrong type or an out-of-range value is a ConfigError naming the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from .data.datasets import DATASETS
from .models import K_EMBEDDINGS, MODELS, RESOLUTIONS, STAGE_CALLS, STAGE_ENTRIES, STAGE_WEIGHTS
from .models.dit import DiTConfig
from .models.unet import UNetConfig
from .path import BUMPS, K_DENSITIES, ORDERS, STAGE_BATCHES
from .sampling.grids import STEP_ALLOCATIONS
from .sampling.sampler import GRIDS
from .sampling.solvers import SOLVERS
from .transforms import BAND_SCALES, TRANSFORMS
from .transforms.base import SPLITS
from .utils.errors import ConfigError
from .utils.typed_config import apply_overrides, build, read_config_file


@dataclass
class DataConfig:
    name: str = "digits"  # CHOICES below; latents: root = a `kflow data encode` folder
    root: str | None = None
    image_size: int | None = None  # pad / resize to this size; None keeps the native size
    channels: int = 1
    hflip: bool = False
    labels: bool = True  # False: ignore class labels and train an unconditional model
    limit: int | None = None  # use only the first N images (tests, quick runs)


@dataclass
class TransformConfig:
    name: str = "identity"  # CHOICES below; identity = flow matching
    num_bands: int | None = None
    wavelet: str = "db6"
    levels: int | None = None
    edges: list[float] | None = None
    split: str = "dyadic"  # how fourier / pca group their scales into bands (CHOICES below)
    pca_samples: int = 10000  # images used to fit the PCA basis
    # none | rms: divide each band's data coefficients by their RMS on the training data (measured
    # once; the run saves the per-band values here) and multiply them back on the samples
    band_scale: str | list[float] = "none"


@dataclass
class PathConfig:
    bump: str = "linear"  # mu(t) inside a band's window (CHOICES below)
    allocation: str | list[float] = "uniform"  # uniform | energy | per-band weights
    order: str = "low_to_high"  # or high_to_low, the reversed K-Flow
    overlap: float = 0.0  # widen each band's k-window: 0 the hard K-Flow path, 1 plain flow matching
    windows: list[list[float]] | None = None  # explicit per-band [start, end] k-windows (instead of overlap)


@dataclass
class ModelConfig:
    name: str = "unet"  # CHOICES below
    k_embedding: str = "k"  # k: sinusoids of k; band: + a one-hot of the band; window: + each band's local time
    # full: the network sees every sample at full resolution; stage: at the resolution of the bands
    # that have started (band-localized compute, wavelet bands; exact, cheaper); coarse: the coarse
    # stage at its resolution, the finer stages at full resolution
    resolution: str = "full"
    stage_weights: str = "shared"  # resolution=stage|coarse: one backbone, one per stage, or coarse
    stage_channels: list[int] | None = None  # stage_weights=own|coarse, UNet: each stage's base channels
    # a UNet shared by stages of several sizes takes each stage's image at its first layer (input) or
    # at the level of the image's size (level: the same weights always see the same spatial scale)
    stage_entry: str = "input"
    unet: UNetConfig = field(default_factory=UNetConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 64  # global batch, split over DDP ranks
    lr: float = 2e-3
    warmup: int = 100
    lr_schedule: str = "constant"  # after the warm-up: constant, or cosine to 1% of lr at the last step
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    k_density: str = "uniform"  # where training draws k (CHOICES below)
    band_loss_weights: str | list[float] | None = None  # None (all 1) | interval | per-band weights
    cond_aug: float = 0.0  # conditioning augmentation: noise std on the bands finished at k (input only)
    label_dropout: float = 0.1  # class-conditional models: probability of the null class
    # model.resolution=stage: k per sample over every stage (mixed), or one stage per step (one); and
    # how often each stage is drawn (None: the k-density's mass of the stage)
    stage_batches: str = "mixed"
    stage_share: list[float] | None = None
    # a staged model's backbones in a mixed batch: one after another, or side by side on CPU threads
    stage_calls: str = "serial"
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0: only at the end
    log_every: int = 50
    amp: str = "auto"  # auto: bf16 on CUDA (CHOICES below)
    # AdamW's kernel: auto is PyTorch's choice (fused on CUDA; on the CPU a loop over the tensors,
    # slow for staged runs' three backbones), fused everywhere (another float summation order)
    adamw: str = "auto"
    compile: bool = False
    nonfinite: str = "stop"  # stop the run, or skip the step
    max_minutes: float | None = None  # stop (and checkpoint) after this wall time
    device: str = "auto"


@dataclass
class SampleConfig:
    solver: str = "euler"
    steps: int = 50
    grid: str = "band"  # band; band_logit: logit-normal steps inside each segment; uniform
    # steps per segment of the band grid: length (of its k interval), equal, or per-band weights
    step_allocation: str | list[float] = "length"
    project: bool = False
    num_grid: int = 64  # images in the sample grid PNGs
    guidance: float = 1.0  # classifier-free guidance scale for class-conditional grids (1 = conditional)
    keep_class_until: float = 1.0  # condition dropping: the class is used only for k below this


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    path: PathConfig = field(default_factory=PathConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    out_dir: str = "runs/default"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        cfg = build(cls, d)
        validate(cfg)
        return cfg


# every option list lives with the code that implements it; config validation and the CLI read them here
CHOICES = {
    "data.name": DATASETS,
    "transform.name": TRANSFORMS,
    "transform.split": SPLITS,
    "path.bump": tuple(BUMPS),
    "path.order": ORDERS,
    "model.name": MODELS,
    "model.k_embedding": K_EMBEDDINGS,
    "model.resolution": RESOLUTIONS,
    "model.stage_weights": STAGE_WEIGHTS,
    "model.stage_entry": STAGE_ENTRIES,
    "train.k_density": K_DENSITIES,
    "train.stage_batches": STAGE_BATCHES,
    "train.stage_calls": STAGE_CALLS,
    "train.amp": ("auto", "bf16", "none"),  # auto: bf16 on CUDA
    "train.nonfinite": ("stop", "skip"),
    "train.lr_schedule": ("constant", "cosine"),  # training/schedule.py: learning_rate
    "train.adamw": ("auto", "fused"),
    "sample.solver": tuple(SOLVERS),
    "sample.grid": GRIDS,
}


def validate(cfg: Config) -> None:
    for key, options in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in options:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(options)}")
    if isinstance(cfg.transform.band_scale, str) and cfg.transform.band_scale not in BAND_SCALES:
        raise ConfigError(
            f"transform.band_scale={cfg.transform.band_scale!r}: use {', '.join(BAND_SCALES)} or a list of per-band RMS"
        )
    if not isinstance(cfg.transform.band_scale, str) and not all(v > 0 for v in cfg.transform.band_scale):
        raise ConfigError(f"transform.band_scale={cfg.transform.band_scale} must be positive per-band RMS values")
    if isinstance(cfg.path.allocation, str) and cfg.path.allocation not in ("uniform", "energy"):
        raise ConfigError(f"path.allocation={cfg.path.allocation!r}: use uniform, energy or a list of per-band weights")
    if isinstance(cfg.train.band_loss_weights, str) and cfg.train.band_loss_weights != "interval":
        raise ConfigError(
            f"train.band_loss_weights={cfg.train.band_loss_weights!r}: use interval or a list of per-band weights"
        )
    alloc = cfg.sample.step_allocation
    if isinstance(alloc, str) and alloc not in STEP_ALLOCATIONS:
        raise ConfigError(f"sample.step_allocation={alloc!r}: use length, equal or per-band weights like [2,1,1]")
    if not isinstance(alloc, str) and (
        len(alloc) != (cfg.transform.num_bands or len(alloc)) or not all(math.isfinite(v) and v > 0 for v in alloc)
    ):
        raise ConfigError(
            f"sample.step_allocation={alloc}: give positive weights, one per band ({cfg.transform.num_bands})"
        )
    t = cfg.train
    staged = [
        f"{key}={value!r}"
        for key, value, default in [
            ("model.stage_weights", cfg.model.stage_weights, "shared"),
            ("train.stage_batches", t.stage_batches, "mixed"),
            ("train.stage_share", t.stage_share, None),
            ("model.stage_channels", cfg.model.stage_channels, None),
            ("model.stage_entry", cfg.model.stage_entry, "input"),
            ("train.stage_calls", t.stage_calls, "serial"),
        ]
        if value != default
    ]
    if staged and cfg.model.resolution == "full":
        raise ConfigError(
            f"{staged[0]} concerns staged models: set model.resolution=stage (or coarse) or leave it at its default"
        )
    if cfg.model.stage_entry == "level" and (
        cfg.model.resolution != "stage" or cfg.model.stage_weights == "own" or cfg.model.name != "unet"
    ):
        raise ConfigError(
            "model.stage_entry=level feeds stages of several sizes into one UNet at their own levels: "
            "set model.resolution=stage, model.stage_weights=shared or coarse, and model.name=unet"
        )
    if t.stage_calls == "threads" and (t.compile or cfg.model.unet.dropout > 0):
        raise ConfigError(
            "train.stage_calls=threads splits the calls over threads: not with train.compile or model.unet.dropout "
            "(one random generator shared by threads); use serial"
        )
    sc = cfg.model.stage_channels
    if sc is not None and (cfg.model.stage_weights == "shared" or cfg.model.name != "unet"):
        raise ConfigError(
            "model.stage_channels sizes each stage's own UNet: set model.stage_weights=own (or coarse) and a UNet"
        )
    if sc is not None and not all(isinstance(c, int) and c >= 1 for c in sc):
        raise ConfigError(f"model.stage_channels={sc} must be positive whole numbers, one per stage")
    validate_train(t)
    for key, value, ok in [
        ("path.overlap", cfg.path.overlap, 0 <= cfg.path.overlap <= 1),
        ("sample.steps", cfg.sample.steps, cfg.sample.steps >= 1),
        ("sample.guidance", cfg.sample.guidance, cfg.sample.guidance >= 0),
        ("sample.keep_class_until", cfg.sample.keep_class_until, 0 <= cfg.sample.keep_class_until <= 1),
        ("data.image_size", cfg.data.image_size, cfg.data.image_size is None or cfg.data.image_size >= 2),
        ("data.channels", cfg.data.channels, cfg.data.channels in (1, 3)),
        ("data.limit", cfg.data.limit, cfg.data.limit is None or cfg.data.limit >= 1),
        ("model.unet.channels", cfg.model.unet.channels, cfg.model.unet.channels >= 1),
        ("model.unet.num_res_blocks", cfg.model.unet.num_res_blocks, cfg.model.unet.num_res_blocks >= 1),
        ("model.unet.channel_mult", cfg.model.unet.channel_mult, all(m >= 1 for m in cfg.model.unet.channel_mult)),
        ("model.dit.patch_size", cfg.model.dit.patch_size, cfg.model.dit.patch_size >= 1),
    ]:
        if not ok:
            raise ConfigError(f"{key}={value!r} is out of range (or not a finite number)")


def validate_train(t: TrainConfig, prefix: str = "train.") -> None:
    """The train section's choices and ranges (image and molecule runs share the section)."""
    for key, options in CHOICES.items():
        if key.startswith("train."):
            value = getattr(t, key.split(".")[1])
            if value not in options:
                raise ConfigError(f"{prefix}{key[6:]}={value!r} is not one of {', '.join(options)}")
    for key, value, ok in [
        ("steps", t.steps, t.steps >= 1),
        ("batch_size", t.batch_size, t.batch_size >= 1),
        ("lr", t.lr, 0 < t.lr < math.inf),
        ("warmup", t.warmup, t.warmup >= 0),
        ("weight_decay", t.weight_decay, 0 <= t.weight_decay < math.inf),
        ("betas", t.betas, len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas)),
        ("ema_decay", t.ema_decay, 0 <= t.ema_decay < 1),
        ("grad_clip", t.grad_clip, t.grad_clip >= 0),
        ("label_dropout", t.label_dropout, 0 <= t.label_dropout <= 1),
        ("cond_aug", t.cond_aug, t.cond_aug >= 0),
        ("ckpt_every", t.ckpt_every, t.ckpt_every >= 1),
        ("log_every", t.log_every, t.log_every >= 1),
        ("keep_checkpoints", t.keep_checkpoints, t.keep_checkpoints >= 1),
    ]:
        if not ok:
            raise ConfigError(f"{prefix}{key}={value!r} is out of range (or not a finite number)")


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    d = read_config_file(path) if path is not None else {}
    return Config.from_dict(apply_overrides(d, list(overrides)))
