"""K-amplitude decompositions: orthonormal transforms with a band label per coefficient."""

from __future__ import annotations

from .base import Transform
from .fourier import FourierTransform
from .graph import GraphTransform
from .identity import IdentityTransform
from .pca import PCATransform
from .wavelet import WaveletTransform

__all__ = [
    "Transform",
    "FourierTransform",
    "GraphTransform",
    "WaveletTransform",
    "PCATransform",
    "IdentityTransform",
    "build_transform",
]


def build_transform(cfg: dict, pca_path=None) -> Transform:
    """Rebuild a transform from its `config()` dict (PCA also needs its saved basis)."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    shape = cfg.pop("shape")
    if name == "identity":
        return IdentityTransform(shape)
    if name == "fourier":
        return FourierTransform(shape, **cfg)
    if name == "wavelet":
        return WaveletTransform(shape, **cfg)
    if name == "pca":
        if pca_path is None:
            raise ValueError("a PCA transform needs its basis file (pca.safetensors) to be rebuilt")
        t = PCATransform.load(pca_path)
        if list(t.shape) != list(shape) or t.sizes != list(cfg.get("band_sizes", t.sizes)):
            raise ValueError(
                f"PCA basis {pca_path} has shape {t.shape} / bands {t.sizes}, but the config expects "
                f"{tuple(shape)} / {cfg.get('band_sizes')}; use the basis saved with this run"
            )
        return t
    if name == "graph":
        raise ValueError(
            "a graph transform is rebuilt from its graph (GraphTransform(weights, ...)), not from a config"
        )
    raise ValueError(f"unknown transform {name!r}; use identity, fourier, wavelet or pca")
