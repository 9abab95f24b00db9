"""Per-band energy of a dataset under each decomposition (the paper's Fig. 3), as JSON + PNG."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .data import load_dataset
from .transforms import FourierTransform, PCATransform, WaveletTransform


def band_table(x: torch.Tensor, num_bands: int = 3) -> dict:
    """Energy and variance fraction per band for Fourier, wavelet (db6) and PCA with num_bands bands."""
    shape = tuple(x.shape[1:])
    transforms = {
        "fourier": FourierTransform(shape, num_bands=num_bands),
        "wavelet_db6": WaveletTransform(shape, "db6", num_bands=num_bands),
        "pca": PCATransform.fit(x.double(), num_bands=num_bands),
    }
    out = {}
    for name, T in transforms.items():
        e, v = T.band_energy(x.double()), T.band_variance(x.double())
        out[name] = {"band_sizes": T.band_sizes().tolist(), "energy_fraction": (e / e.sum()).tolist(),
                     "variance_fraction": (v / v.sum()).tolist()}
    return out


def fine_spectra(x: torch.Tensor) -> dict:
    """Finest per-scale curves: Fourier energy per integer radius, wavelet energy per level (coarse
    to fine), PCA variance per component; each as energy per coefficient."""
    shape = tuple(x.shape[1:])
    xc = (x - x.mean(0, keepdim=True)).double()
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
    # 1/f power law: variance per coefficient ~ r^-alpha
    r = np.arange(1, len(res["fourier_radius"]))
    vals = np.array(res["fourier_radius"][1:])
    ok = vals > 0
    slope = np.polyfit(np.log(r[ok]), np.log(vals[ok]), 1)[0]
    res["fourier_powerlaw_slope"] = float(slope)
    del xc
    return res


def inspect_data(dataset: str, out: str | Path, root: str | None = None, image_size: int | None = 32,
                 limit: int | None = 10000, num_bands: int = 3) -> str:
    data = load_dataset(dataset, "train", root, image_size, limit=limit)
    x = data.x
    report = {"dataset": dataset, "images": len(x), "shape": list(x.shape[1:]), "bands": band_table(x, num_bands),
              "spectra": fine_spectra(x)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "band_energy.json").write_text(json.dumps(report, indent=2))
    lines = [f"{dataset}: {len(x)} images of shape {tuple(x.shape[1:])}; per-band share of total variance "
             f"({num_bands} bands, band 0 = coarsest)"]
    for name, row in report["bands"].items():
        shares = "  ".join(f"{v:6.1%}" for v in row["variance_fraction"])
        lines.append(f"  {name:12s} sizes {row['band_sizes']}  variance {shares}")
    lines.append(f"  radial Fourier spectrum: variance per coefficient ~ |f|^{report['spectra']['fourier_powerlaw_slope']:.2f}")
    try:
        png = _plot(report, out / "band_energy.png")
        lines.append(f"wrote {out / 'band_energy.json'} and {png}")
    except ImportError:
        lines.append(f"wrote {out / 'band_energy.json'} (install matplotlib for the plot)")
    return "\n".join(lines)


def _plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sp = report["spectra"]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    names = list(report["bands"])
    B = len(report["bands"][names[0]]["variance_fraction"])
    for j, name in enumerate(names):
        axes[0].bar(np.arange(B) + (j - 1) * 0.27, report["bands"][name]["variance_fraction"], width=0.27, label=name)
    axes[0].set(title="share of variance per band", xlabel="band (0 = coarsest)", xticks=range(B))
    axes[0].legend(fontsize=8)
    axes[1].loglog(range(1, len(sp["fourier_radius"]) + 1), sp["fourier_radius"], "o-", ms=3)
    axes[1].set(title=f"Fourier: variance/coef vs |f| (slope {sp['fourier_powerlaw_slope']:.2f})", xlabel="|f|")
    axes[2].semilogy(sp["wavelet_level"], "o-")
    axes[2].set(title="wavelet db6: variance/coef per level", xlabel="0 = approximation, then coarse -> fine")
    axes[3].loglog(range(1, len(sp["pca_component"]) + 1), sp["pca_component"])
    axes[3].set(title="PCA: variance per component", xlabel="component")
    fig.suptitle(f"{report['dataset']} ({report['images']} images)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
