"""Figures of the analyses (matplotlib, the `plot` extra). Each takes the JSON-able report dict
that `kflow.inspection` also writes, so every figure can be redrawn from its JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    from ..utils.atomic import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    _plt().close(fig)
    return Path(path)


def plot_data_spectra(report: dict, path) -> Path:
    plt = _plt()
    sp = report["spectra"]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    names = list(report["bands"])
    B = len(report["bands"][names[0]]["variance_fraction"])
    w = 0.8 / len(names)
    for j, name in enumerate(names):
        off = (j - (len(names) - 1) / 2) * w
        axes[0].bar(np.arange(B) + off, report["bands"][name]["energy_fraction"], width=w, label=name)
        axes[1].bar(np.arange(B) + off, report["bands"][name]["variance_fraction"], width=w, label=name)
    axes[0].set(title="share of energy per band", xlabel="band (0 = coarsest)", xticks=range(B))
    axes[1].set(title="share of variance per band", xlabel="band (0 = coarsest)", xticks=range(B))
    axes[0].legend(fontsize=8)
    r = np.arange(1, len(sp["fourier_radius"]))  # entry 0 is the mean (|f| = 0)
    axes[2].loglog(r, sp["fourier_radius"][1:], "o-", ms=3, label="data")
    fit = sp["fourier_powerlaw"]
    axes[2].loglog(r, np.exp(fit["intercept"]) * r ** fit["slope"], "k--", lw=1, label=f"fit |f|^{fit['slope']:.2f}")
    axes[2].set(title="Fourier: variance per coefficient", xlabel="radial frequency |f|")
    axes[2].legend(fontsize=8)
    axes[3].semilogy(sp["wavelet_level"], "o-")
    axes[3].set(title="wavelet db6: variance per coefficient", xlabel="0 = approximation, then coarse -> fine")
    axes[4].loglog(range(1, len(sp["pca_component"]) + 1), sp["pca_component"])
    axes[4].set(title="PCA: variance per component", xlabel="component")
    fig.suptitle(f"{report['dataset']} ({report['images']} images)")
    fig.tight_layout()
    return _save(fig, path)


def plot_spectral_evolution(report: dict, path) -> Path:
    """Per-band energy relative to the final sample's, against k: (a) of x_k, (b) of the estimate
    of the final sample; one line style per run, one colour per band; band boundaries dashed."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    styles = ["-", "--", ":", "-."]
    colours = plt.get_cmap("viridis")
    for ax, key, title in ((axes[0], "state", "state x_k"), (axes[1], "estimate", "estimate of the final sample")):
        for j, (name, run) in enumerate(report["runs"].items()):
            rel = np.array(run[key])  # (T, B)
            kk = np.array(run["k"][: len(rel)])
            B = rel.shape[1]
            for b in range(B):
                ax.plot(kk, rel[:, b], styles[j % 4], color=colours(b / max(B - 1, 1)), label=f"{name}: band {b}")
        for kb in report["boundaries"][1:-1]:
            ax.axvline(kb, color="grey", ls="--", lw=0.8)
        ax.axhline(1, color="k", lw=0.5)
        ax.set(title=f"{title}: band energy / final", xlabel="k", yscale="log" if key == "state" else "linear")
        if key == "estimate":  # spikes where the network blends two bands (band starts) are cut at 1.6
            ax.set_ylim(-0.05, 1.6)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(
        f"per-band energy along sampling, bands of {report['decomposition']} ({report['n']} samples, "
        f"seed {report['seed']}, {report['steps']} Euler steps; dashed: band boundaries)"
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_projection_ratio(report: dict, path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in report["runs"].items():
        ax.plot(run["k"], run["projection_ratio"], label=name)
    for kb in report["boundaries"][1:-1]:
        ax.axvline(kb, color="grey", ls="--", lw=0.8)
    ax.set(
        title=f"energy kept by the top-2 principal components ({report['n']} samples)",
        xlabel="k",
        ylabel="1 - ||x - proj_2 x||^2 / ||x||^2",
    )
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
