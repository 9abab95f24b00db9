"""A trained run loaded back: its config, transform, path and EMA model rebuilt from a checkpoint,
the check that a checkpoint in a run folder is that run's, and ToImage (model space -> images)."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import Config, ConfigError
from .path import KFlowPath
from .recipe import make_band_scale, make_model, make_path, make_transform
from .transforms import BandScale


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

    from .run_identity import run_difference
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


def refuse_other_kind(run_dir: Path, command: str) -> None:
    """A molecule run folder given to an image command: say so, and which command takes it."""
    import json

    from .run_identity import run_kind
    from .utils.errors import CheckpointError

    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return  # not readable here: the checks that follow name the file
    if run_kind(saved) == "molecule":
        raise CheckpointError(
            f"{run_dir} is a molecule run (kflow molecules train); {command} takes image runs: use kflow "
            "molecules sample / score on it"
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
        refuse_other_kind(checkpoint, "this command")
        folder = checkpoint / "checkpoints" if (checkpoint / "checkpoints").is_dir() else checkpoint
        remove_dead_temp_files(folder.parent if folder.name == "checkpoints" else folder)
        ck = load_latest_checkpoint(folder)
        if ck is None:
            raise CheckpointError(f"no usable checkpoint in {folder}; give a ckpt-*.safetensors file")
        checkpoint = ck.path
    else:
        refuse_other_kind(checkpoint.parent.parent, "this command")
        if checkpoint.is_file() and checkpoint.suffix != ".safetensors":
            raise CheckpointError(
                f"{checkpoint} is not a checkpoint ({checkpoint.suffix or 'no suffix'}); give a run folder or "
                "its ckpt-*.safetensors file"
            )
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
