"""kflow: K-Flow generative modelling, generation band by band along a K-amplitude decomposition."""

from .path import BandSchedule, KFlowPath, PathSample
from .transforms import FourierTransform, IdentityTransform, PCATransform, Transform, WaveletTransform

__version__ = "0.1.0"
__all__ = [
    "BandSchedule",
    "KFlowPath",
    "PathSample",
    "Transform",
    "FourierTransform",
    "WaveletTransform",
    "PCATransform",
    "IdentityTransform",
]
