"""Data spectra: per-band energy and variance of a dataset under each decomposition (the paper's
Fig. 3), and the finest per-scale curves with the 1/f power-law fit of the radial Fourier spectrum."""

from __future__ import annotations

import numpy as np
import torch

from ..transforms import FourierTransform, PCATransform, WaveletTransform
from ..utils.errors import BandCountError


def band_table(x: torch.Tensor, num_bands: int = 3) -> dict:
    """Energy and variance fraction per band for Fourier, wavelet (db6) and PCA with num_bands bands."""
    shape = tuple(x.shape[1:])
    builders = {
        "fourier": lambda: FourierTransform(shape, num_bands=num_bands),
        "wavelet_db6": lambda: WaveletTransform(shape, "db6", num_bands=num_bands),
        "pca": lambda: PCATransform.fit(x.double(), num_bands=num_bands),
    }
    transforms, limits = {}, []
    for name, build in builders.items():
        try:
            transforms[name] = build()
        except BandCountError as e:
            limits.append(e.limit)
    if limits:  # name the count every decomposition can make, not only the first one's
        n = min(limits)
        raise BandCountError(
            f"num_bands={num_bands}: images of shape {shape} make at most {n} bands in every decomposition", n
        )
    out = {}
    for name, T in transforms.items():
        e, v = T.band_energy(x.double()), T.band_variance(x.double())
        out[name] = {
            "band_sizes": T.band_sizes().tolist(),
            "energy_fraction": (e / e.sum()).tolist(),
            "variance_fraction": (v / v.sum()).tolist(),
        }
    return out


def fine_spectra(x: torch.Tensor) -> dict:
    """Finest per-scale curves: Fourier energy per integer radius, wavelet energy per level (coarse
    to fine), PCA variance per component; each as energy per coefficient."""
    shape = tuple(x.shape[1:])
    H = shape[-1]
    radii = list(range(1, H // 2 + 1))
    F = FourierTransform(shape, edges=[r - 0.5 for r in radii])
    W = WaveletTransform(shape, "db6")
    P = PCATransform.fit(x.double(), num_bands=1)
    res = {}
    for name, T in (("fourier_radius", F), ("wavelet_level", W)):
        v = T.band_variance(x.double()) / T.band_sizes().double()
        res[name] = v.tolist()
    res["pca_component"] = P.variance[: min(256, len(P.variance))].tolist()
    # 1/f power law: variance per coefficient ~ |f|^slope, least squares in log-log over |f| >= 1
    # (entry j of fourier_radius is |f| ~ j, entry 0 the mean)
    r = np.arange(1, len(res["fourier_radius"]))
    vals = np.array(res["fourier_radius"][1:])
    ok = vals > 0
    slope, intercept = np.polyfit(np.log(r[ok]), np.log(vals[ok]), 1)
    res["fourier_powerlaw"] = {"slope": float(slope), "intercept": float(intercept)}
    res["fourier_powerlaw_slope"] = float(slope)
    return res
