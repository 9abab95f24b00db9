"""Turn a Config (and the training data) into the objects of a run: transform, path, model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Config, ConfigError
from .models import build_model
from .path import KFlowPath
from .transforms import BandScale, FourierTransform, IdentityTransform, PCATransform, Transform, WaveletTransform


def make_transform(
    cfg: Config, shape, data: torch.Tensor | None = None, pca_path: str | Path | None = None
) -> Transform:
    t = cfg.transform
    if t.name == "identity":
        return IdentityTransform(shape)
    if t.name == "fourier":
        if t.edges is not None:
            return FourierTransform(shape, edges=t.edges)
        return FourierTransform(shape, num_bands=t.num_bands or 2, split=t.split)
    if t.name == "wavelet":
        return WaveletTransform(shape, t.wavelet, levels=t.levels, num_bands=t.num_bands)
    if t.name == "pca":
        if pca_path is not None and Path(pca_path).exists():
            T = PCATransform.load(pca_path)
            if tuple(T.shape) != tuple(shape):
                raise ConfigError(
                    f"PCA basis {pca_path} is for shape {T.shape}, the data has shape {tuple(shape)}; "
                    "delete it to refit"
                )
            return T
        if data is None:
            raise ConfigError("a PCA transform needs its basis file (pca.safetensors next to the checkpoint)")
        return PCATransform.fit(data[: t.pca_samples].double(), num_bands=t.num_bands or 2, split=t.split)
    raise ConfigError(f"transform.name={t.name!r} is unknown")


def make_band_scale(cfg: Config, transform: Transform, data: torch.Tensor | None = None) -> BandScale | None:
    """None for transform.band_scale=none; 'rms' is measured on the data (the trainer saves the values)."""
    bs = cfg.transform.band_scale
    if bs == "none":
        return None
    if bs == "rms":
        if data is None:
            raise ConfigError("transform.band_scale=rms needs the data (resolved values are saved with each run)")
        return BandScale.fit(transform, data[:10000])
    try:
        return BandScale(transform, bs)
    except ValueError as e:
        raise ConfigError(f"transform.band_scale: {e}") from None


def make_path(cfg: Config, transform: Transform, data: torch.Tensor | None = None) -> KFlowPath:
    energy = None
    if cfg.path.allocation == "energy":
        if data is None:
            raise ConfigError("path.allocation=energy needs the data (resolved weights are saved with each run)")
        energy = transform.band_energy(data[:10000])
    try:
        return KFlowPath(
            transform,
            bump=cfg.path.bump,
            allocation=cfg.path.allocation,
            order=cfg.path.order,
            energy=energy,
            overlap=cfg.path.overlap,
            windows=cfg.path.windows,
        )
    except ValueError as e:
        raise ConfigError(f"path: {e}") from None


def make_model(cfg: Config, shape, num_classes: int, path: KFlowPath | None = None) -> torch.nn.Module:
    """The backbone for data of `shape` with `num_classes` classes. What follows from the data and the
    path (channels, size, classes, the band k-embedding's edges) goes into a copy of the model
    config; the caller's config is left as it is."""
    m = cfg.model.unet if cfg.model.name == "unet" else cfg.model.dit
    if shape[1] != shape[2]:
        raise ConfigError(f"models take square images; got {shape[1]}x{shape[2]} (set data.image_size)")
    edges, windows = m.band_edges, m.band_windows
    if path is not None:
        edges = path.position_starts()[1:].tolist() if cfg.model.k_embedding == "band" else []
        windows = path.windows().tolist() if cfg.model.k_embedding == "window" else []
    m = dataclasses.replace(
        m, band_edges=edges, band_windows=windows, in_channels=shape[0], image_size=shape[1], num_classes=num_classes
    )
    return build_model(cfg.model.name, m)


def pick_device(name: str) -> torch.device:
    """'auto' (CUDA when there is one), 'cpu', 'cuda' or 'cuda:N'; anything else, or a GPU this
    machine lacks, is a one-line ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r}: kflow runs on cpu or cuda; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: this torch build or machine has no CUDA GPU; use cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: there are only {torch.cuda.device_count()} GPUs (cuda:0 ..)")
    return dev


class LoadedRun:
    """A trained run ready for sampling: EMA model, path, config, and the band scale (None, or the
    per-band normalisation the model's samples are in: `to_data` maps them back)."""

    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        path: KFlowPath,
        num_classes: int,
        step: int,
        scale: BandScale | None = None,
    ):
        self.cfg, self.model, self.path, self.num_classes, self.step = cfg, model, path, num_classes, step
        self.scale = scale

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.scale is None else self.scale.denormalize(x)

    def require_unscaled(self, what: str) -> None:
        if self.scale is not None:
            raise ConfigError(f"{what} of runs trained with transform.band_scale is not supported; use another run")


def load_run(checkpoint: str | Path, device="cpu", weights: str = "ema") -> LoadedRun:
    """Rebuild model and path from a checkpoint (its config is stored inside it)."""
    from .utils.checkpoint import CheckpointError, load_checkpoint, load_latest_checkpoint, load_state

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():  # a run folder or its checkpoints folder: the newest sound checkpoint
        folder = checkpoint / "checkpoints" if (checkpoint / "checkpoints").is_dir() else checkpoint
        ck = load_latest_checkpoint(folder)
        if ck is None:
            raise CheckpointError(f"no usable checkpoint in {folder}; give a ckpt-*.safetensors file")
        checkpoint = ck.path
    else:
        ck = load_checkpoint(checkpoint)
    cfg = Config.from_dict(ck.meta["config"])
    shape = tuple(ck.meta["shape"])
    run_dir = checkpoint.parent.parent
    transform = make_transform(cfg, shape, None, run_dir / "pca.safetensors")
    path = make_path(cfg, transform)
    model = make_model(cfg, shape, int(ck.meta["num_classes"]), path)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights={weights!r}: use 'ema' or 'model'")
    load_state(model, ck.state(weights), weights)
    n_cls, step = int(ck.meta["num_classes"]), int(ck.meta["step"])
    return LoadedRun(cfg, model.to(device).eval(), path, n_cls, step, make_band_scale(cfg, transform))


@dataclass
class RunSampling:
    """How a run is sampled beyond the bare model: the velocity factory `sample(velocity=...)`
    takes (guidance and condition dropping) and the decoder of a latent run. None where plain."""

    velocity: Callable | None  # labels (N,) -> velocity(x, k)
    decode: Callable | None  # latents (N, C, h, w) -> images in [-1, 1]


def run_sampling(
    model,
    cfg: Config,
    y,
    guidance: float = 1.0,
    keep_class_until: float = 1.0,
    device="cpu",
    vae=None,
    scale: BandScale | None = None,
) -> RunSampling:
    """The one place that turns a run's sampling settings into wrappers (trainer grids, `kflow sample`).
    decode maps samples to images: the band scale undone, then the latent decoder."""
    velocity = None
    if guidance != 1.0 or keep_class_until < 1.0:
        if y is None:
            raise ConfigError("guidance and condition dropping need class labels and a class-conditional model")
        from .steering import class_conditional

        velocity = class_conditional(model, guidance, keep_class_until)
    decode = None
    if cfg.data.name == "latents":  # show images, not latents: decode with the encoding's VAE
        from .data.latents import LatentDecoder

        decode = LatentDecoder(cfg.data.root, vae, device=device)
    if scale is not None:
        latent = decode
        decode = scale.denormalize if latent is None else (lambda x: latent(scale.denormalize(x)))
    return RunSampling(velocity, decode)
