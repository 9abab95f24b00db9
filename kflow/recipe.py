"""Turn a Config (and the training data) into the objects of a run: transform, band scale, path,
model. Loading a trained run back is runs.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from .config import Config, ConfigError
from .models import build_model
from .models.staged import StagedModel, entry_levels
from .path import BandSchedule, KFlowPath
from .transforms import BandScale, FourierTransform, IdentityTransform, PCATransform, Transform, WaveletTransform

FIT_IMAGES = 10000  # images the band scale and the energy allocation are measured on


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
        return BandScale.fit(transform, data[:FIT_IMAGES])
    try:
        return BandScale(transform, bs)
    except ValueError as e:
        raise ConfigError(f"transform.band_scale: {e}") from None


def make_path(cfg: Config, transform: Transform, data: torch.Tensor | None = None) -> KFlowPath:
    energy = None
    if cfg.path.allocation == "energy":
        if data is None:
            raise ConfigError("path.allocation=energy needs the data (resolved weights are saved with each run)")
        energy = transform.band_energy(data[:FIT_IMAGES])
    try:
        schedule = BandSchedule(
            transform.num_bands,
            bump=cfg.path.bump,
            allocation=cfg.path.allocation,
            order=cfg.path.order,
            energy=energy,
            overlap=cfg.path.overlap,
            windows=cfg.path.windows,
        )
        return KFlowPath(transform, schedule)
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
    if path is not None:  # the k-embedding reads the path's schedule
        edges = path.schedule.position_starts()[1:].tolist() if cfg.model.k_embedding == "band" else []
        windows = path.schedule.windows().tolist() if cfg.model.k_embedding == "window" else []
    m = dataclasses.replace(
        m, band_edges=edges, band_windows=windows, in_channels=shape[0], image_size=shape[1], num_classes=num_classes
    )
    if cfg.model.name == "unet":  # entry levels follow from the stages (model.stage_entry), set below
        m = dataclasses.replace(m, entry_levels=[])
    staged = cfg.model.resolution != "full" and path is not None and path.num_bands > 1  # one band: the image
    B = path.num_bands if staged else 1
    groups = None  # stage -> backbone (None: one backbone for every stage)
    if staged and cfg.model.stage_weights != "shared":
        groups = list(range(B)) if cfg.model.stage_weights == "own" else [0] + [1] * (B - 1)  # 'coarse'
    of = groups or [0] * B
    levels = [0] * B  # stage -> the UNet level its image enters at (model.stage_entry=level)
    if staged and cfg.model.stage_entry == "level":
        try:
            levels = entry_levels([path.transform.stage_shape(s) for s in range(B)], groups)
        except ValueError as e:
            raise ConfigError(f"model.resolution={cfg.model.resolution}: {e}") from None
    first = [of.index(g) for g in range(max(of) + 1)]  # each backbone's first stage

    def backbone(s: int, **change) -> torch.nn.Module:
        """The backbone whose first stage is s, with the entry levels of its stages."""
        mine = sorted({lv for t, lv in enumerate(levels) if lv and of[t] == of[s]})
        if mine:
            change["entry_levels"] = mine
        try:
            return build_model(cfg.model.name, dataclasses.replace(m, **change))
        except ValueError as e:
            raise ConfigError(
                f"model.stage_entry=level: {e}; give model.unet.channel_mult a level per stage size"
            ) from None

    model = backbone(0)
    if not staged:
        return model
    own = None
    if groups is not None:  # more backbones, each from its own draw (stage 0's first)
        widths = cfg.model.stage_channels
        if widths is not None and len(widths) != B:
            raise ConfigError(f"model.stage_channels has {len(widths)} entries for {B} stages")
        if widths is not None and any(widths[s] != widths[first[groups[s]]] for s in range(B)):
            raise ConfigError(
                f"model.stage_channels={widths}: stages that share a backbone (stage_weights=coarse: stages 1..) "
                "need the same width"
            )
        if widths is not None:  # each backbone's UNet at its stages' width
            own = [backbone(s, channels=widths[s]) for s in first]
            model = own[0]
        else:
            own = [model] + [backbone(s) for s in first[1:]]
    try:
        full_from = 1 if cfg.model.resolution == "coarse" else None
        entry, calls = cfg.model.stage_entry, cfg.train.stage_calls
        return StagedModel(model, path, own, groups, full_from=full_from, entry=entry, stage_calls=calls)
    except ValueError as e:
        raise ConfigError(f"model.resolution={cfg.model.resolution}: {e}") from None
