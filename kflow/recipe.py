"""Turn a Config (and the training data) into the objects of a run: transform, path, model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .config import Config, ConfigError
from .models import build_model
from .models.staged import StagedModel
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
    model = build_model(cfg.model.name, m)
    if cfg.model.resolution == "full" or path is None or path.num_bands == 1:  # one band: its stage is the image
        return model
    if cfg.model.name != "unet":
        raise ConfigError(
            "model.resolution=stage runs a UNet (convolutional, any size); a DiT would need positional "
            "embeddings per grid: use model.name=unet or model.resolution=full"
        )
    try:
        return StagedModel(model, path)
    except ValueError as e:
        raise ConfigError(f"model.resolution=stage: {e}") from None


class ToImage:
    """Model space -> images in [-1, 1]: the band scale undone (runs trained on per-band normalised
    data), then a latent run's VAE decoder. The one home of this rule, as EDM's preconditioning
    wrapper owns its scaling: sampling, the studio, scoring and the benchmarks all call it. The
    decoder is loaded on first use."""

    def __init__(self, cfg: Config, scale: BandScale | None = None, vae=None, device="cpu"):
        self.scale, self.vae, self.device = scale, vae, device
        self.latent_root = cfg.data.root if cfg.data.name == "latents" else None
        self._decoder = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = self.scale.denormalize(x)
        if self.latent_root is None:
            return x
        if self._decoder is None:
            from .data.latents import LatentDecoder

            self._decoder = LatentDecoder(self.latent_root, self.vae, device=self.device)
        return self._decoder(x)


class LoadedRun:
    """A trained run ready for sampling: EMA model, path, config, and the band scale (None, or the
    per-band normalisation the model's samples are in). `to_image` maps samples to images."""

    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        path: KFlowPath,
        num_classes: int,
        step: int,
        scale: BandScale | None = None,
        device="cpu",
    ):
        self.cfg, self.model, self.path, self.num_classes, self.step = cfg, model, path, num_classes, step
        self.scale = scale
        self.to_image = ToImage(cfg, scale, device=device)

    @property
    def latent(self) -> bool:
        return self.to_image.latent_root is not None

    def require_unscaled(self, what: str) -> None:
        if self.scale is not None:
            raise ConfigError(f"{what} of runs trained with transform.band_scale is not supported; use another run")


def check_belongs(saved: dict, run_dir: Path, name: str) -> None:
    """A checkpoint inside a run folder must be that run's (a copied-in checkpoint of another width or
    another conditioning would be used without a word): its config against the run's config.json."""
    import json

    from .config import run_difference
    from .utils.checkpoint import CheckpointError

    own = run_dir / "config.json"
    if not own.is_file():
        return
    try:
        run_cfg = json.loads(own.read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"{own} is not readable JSON; restore it or load the checkpoint by its file") from None
    diff = run_difference(run_cfg, saved)
    if diff:
        key, theirs, ours = diff
        raise CheckpointError(
            f"{name} belongs to another run ({key} is {ours!r} in it, {theirs!r} in {own}); remove it from "
            f"{run_dir / 'checkpoints'} or give the checkpoint of the right run"
        )


def remove_dead_temp_files(run_dir: Path) -> None:
    """Temp files a killed checkpoint writer left in the run's checkpoints/: removed when no command
    holds the run (a training that does hold it may be writing one right now)."""
    from .utils.atomic import remove_temp_files, temp_files
    from .utils.lock import FolderBusy, FolderLock

    if not temp_files(run_dir / "checkpoints", "ckpt-"):
        return
    try:
        with FolderLock(run_dir):
            remove_temp_files(run_dir / "checkpoints", "ckpt-")
    except (FolderBusy, OSError):  # in use, or read-only: leave them
        pass


def load_run(checkpoint: str | Path, device="cpu", weights: str = "ema") -> LoadedRun:
    """Rebuild model and path from a checkpoint (its config is stored inside it)."""
    from .utils.checkpoint import CheckpointError, load_checkpoint, load_latest_checkpoint, load_state

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():  # a run folder or its checkpoints folder: the newest sound checkpoint
        folder = checkpoint / "checkpoints" if (checkpoint / "checkpoints").is_dir() else checkpoint
        remove_dead_temp_files(folder.parent if folder.name == "checkpoints" else folder)
        ck = load_latest_checkpoint(folder)
        if ck is None:
            raise CheckpointError(f"no usable checkpoint in {folder}; give a ckpt-*.safetensors file")
        checkpoint = ck.path
    else:
        ck = load_checkpoint(checkpoint)
    run_dir = checkpoint.parent.parent
    check_belongs(ck.meta.get("config", {}), run_dir, checkpoint.name)
    try:
        cfg = Config.from_dict(ck.meta["config"])
    except ConfigError as e:
        raise ConfigError(
            f"{checkpoint.name} was written with settings this kflow does not know ({e}); load it with the "
            "kflow version that trained it"
        ) from None
    shape = tuple(ck.meta["shape"])
    transform = make_transform(cfg, shape, None, run_dir / "pca.safetensors")
    path = make_path(cfg, transform)
    model = make_model(cfg, shape, int(ck.meta["num_classes"]), path)
    if weights not in ("ema", "model"):
        raise ValueError(f"weights={weights!r}: use 'ema' or 'model'")
    load_state(model, ck.state(weights), weights)
    n_cls, step = int(ck.meta["num_classes"]), int(ck.meta["step"])
    return LoadedRun(cfg, model.to(device).eval(), path, n_cls, step, make_band_scale(cfg, transform), device)
