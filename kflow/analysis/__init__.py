"""Analyses of data and of generation along the path (what `kflow inspect` reports)."""

from .spectra import band_table, fine_spectra
from .strips import BandStrip, band_strip, strip_of
from .trajectory import Trajectory, band_energy_curve, estimate_curve, final_estimate, projection_ratio, settle_k, trace

__all__ = [
    "band_table",
    "fine_spectra",
    "BandStrip",
    "band_strip",
    "strip_of",
    "Trajectory",
    "trace",
    "final_estimate",
    "band_energy_curve",
    "estimate_curve",
    "projection_ratio",
    "settle_k",
]
