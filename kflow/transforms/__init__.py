"""K-amplitude decompositions: orthonormal transforms with a band label per coefficient."""

from __future__ import annotations

from .base import Transform
from .fourier import FourierTransform
from .graph import GraphTransform
from .identity import IdentityTransform
from .pca import PCATransform
from .scaling import BAND_SCALES, BandScale
from .wavelet import WaveletTransform

# what a config can name (graph transforms are built by the molecules code)
TRANSFORMS = ("identity", "fourier", "wavelet", "pca")

__all__ = [
    "TRANSFORMS",
    "Transform",
    "FourierTransform",
    "GraphTransform",
    "WaveletTransform",
    "PCATransform",
    "IdentityTransform",
    "BandScale",
    "BAND_SCALES",
]
