"""`kflow inspect data|path|strip`: the analyses of kflow.analysis written as JSON + PNG.

data  - per-band energy and variance of a dataset for every decomposition, fine spectra, 1/f fit
path  - spectral evolution along sampling and the projection ratio, FM and K-Flow on one axis
strip - x_k at every band boundary and each band alone, for a few samples
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .analysis import (
    band_energy_curve,
    band_strip,
    band_table,
    estimate_curve,
    fine_spectra,
    projection_ratio,
    settle_k,
)
from .analysis.trajectory import trace
from .data import load_dataset
from .sampling.noise import draw_x0
from .sampling.sampler import make_grid
from .sampling.wrappers import ModelVelocity
from .steering.guidance import classes_in_turn


def _write_json(path: Path, obj) -> None:
    from .utils.atomic import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2)))


def _plot(fn, report, png: Path, lines: list[str]) -> None:
    try:
        from .viz import plots
    except ImportError:  # pragma: no cover - matplotlib is the `plot` extra
        lines.append("install matplotlib (pip install 'kflow[plot]') for the figure")
        return
    try:
        getattr(plots, fn)(report, png)
    except ImportError:
        lines.append("install matplotlib (pip install 'kflow[plot]') for the figure")
        return
    lines.append(f"figure: {png}")


def inspect_data(
    dataset: str,
    out: str | Path,
    root: str | None = None,
    image_size: int | None = 32,
    limit: int | None = 10000,
    num_bands: int = 3,
) -> str:
    data = load_dataset(dataset, "train", root, image_size, limit=limit)
    x = data.x
    report = {
        "dataset": dataset,
        "images": len(x),
        "shape": list(x.shape[1:]),
        "bands": band_table(x, num_bands),
        "spectra": fine_spectra(x),
    }
    out = Path(out)
    _write_json(out / "band_energy.json", report)
    lines = [
        f"{dataset}: {len(x)} images of shape {tuple(x.shape[1:])}; per-band share of energy / of variance "
        f"({num_bands} bands, band 0 = coarsest)"
    ]
    for name, row in report["bands"].items():
        e = "  ".join(f"{v:6.1%}" for v in row["energy_fraction"])
        v = "  ".join(f"{v:6.1%}" for v in row["variance_fraction"])
        lines.append(f"  {name:12s} sizes {row['band_sizes']}  energy {e}  variance {v}")
    lines.append(
        f"  radial Fourier spectrum: variance per coefficient ~ |f|^{report['spectra']['fourier_powerlaw_slope']:.2f}"
    )
    lines.append(f"wrote {out / 'band_energy.json'}")
    _plot("plot_data_spectra", report, out / "band_energy.png", lines)
    return "\n".join(lines)


def path_report(runs: dict, n: int = 128, steps: int = 100, seed: int = 0) -> dict:
    """Trace every run (name -> LoadedRun) from the same noise and measure, in the decomposition of
    the first K-Flow run, per-band energy of x_k and of the final-sample estimate relative to the
    final sample, the projection ratio, and the k at which each band settles within 10%."""
    kflow_runs = [r for r in runs.values() if r.path.num_bands > 1]
    if not kflow_runs:
        raise ValueError("give at least one K-Flow checkpoint: its decomposition measures the bands")
    ref = kflow_runs[0].path
    T = ref.transform
    shape = tuple(T.shape)
    x_0 = draw_x0(n, shape, seed)
    report = {
        "decomposition": T.describe(),
        "boundaries": ref.boundaries().tolist(),  # every window edge
        "n": n,
        "steps": steps,
        "seed": seed,
        "runs": {},
    }
    for name, run in runs.items():
        if tuple(run.path.transform.shape) != shape:
            raise ValueError(f"run {name} makes samples of shape {tuple(run.path.transform.shape)}, not {shape}")
        device = next(run.model.parameters()).device
        grid = make_grid(run.path, steps, "band")
        traj = trace(ModelVelocity(run.model, None), grid, x_0.to(device))
        final = T.band_energy(traj.x[-1].double())
        state = band_energy_curve(T, traj.x) / final
        est = band_energy_curve(T, estimate_curve(run.path, traj)) / final
        ratio = torch.stack([projection_ratio(x) for x in traj.x])
        kk = traj.k
        report["runs"][name] = {
            "bands_of_path": run.path.num_bands,
            "k": kk.tolist(),
            "state": state.tolist(),
            "estimate": est.tolist(),
            "projection_ratio": ratio.tolist(),
            "final_band_energy": final.tolist(),
            "settle_k_state": [settle_k(kk, state[:, b]) for b in range(T.num_bands)],
            "settle_k_estimate": [settle_k(kk[:-1], est[:, b]) for b in range(T.num_bands)],
        }
    return report


def inspect_path(
    checkpoints: list[str],
    out: str | Path,
    names: list[str] | None = None,
    n: int = 128,
    steps: int = 100,
    seed: int = 0,
    device="cpu",
) -> str:
    from .runs import load_run

    names = names or [Path(c).parent.name if Path(c).is_file() else Path(c).name for c in checkpoints]
    if len(names) != len(checkpoints) or len(set(names)) != len(names):
        raise ValueError(f"--names must give one distinct name per checkpoint ({len(checkpoints)}); got {names}")
    runs = {nm: load_run(c, device=device) for nm, c in zip(names, checkpoints)}
    report = path_report(runs, n=n, steps=steps, seed=seed)
    out = Path(out)
    _write_json(out / "path.json", report)
    lines = [
        f"measured in {report['decomposition']}; band boundaries k = "
        + ", ".join(f"{v:.3f}" for v in report["boundaries"])
        + f"; {n} samples, seed {seed}, {steps} Euler steps",
        "k at which each band's energy settles within 10% of the final sample's (band 0 = coarsest):",
    ]
    for name, r in report["runs"].items():
        fmt = lambda v: "  ".join(f"{x:.3f}" for x in v)
        lines.append(f"  {name:16s} estimate {fmt(r['settle_k_estimate'])}   state {fmt(r['settle_k_state'])}")
    lines.append(f"wrote {out / 'path.json'}")
    _plot("plot_spectral_evolution", report, out / "spectral_evolution.png", lines)
    _plot("plot_projection_ratio", report, out / "projection_ratio.png", lines)
    return "\n".join(lines)


def inspect_strip(
    checkpoint: str, out: str | Path, n: int = 6, steps: int = 50, seed: int = 0, what: str = "all", device="cpu"
) -> str:
    from .runs import load_run
    from .viz.images import save_image_grid

    run = load_run(checkpoint, device=device)
    y = classes_in_turn(n, run.num_classes)
    strip = band_strip(run.model, run.path, n=n, steps=steps, seed=seed, y=y, device=device)
    images, columns = strip.grid(what)
    images = run.to_image(images)  # model space -> image scale (band-scaled and latent runs)
    out = Path(out)
    png = save_image_grid(images, out / "strip.png", nrow=n, scale=3)
    _write_json(
        out / "strip.json",
        {
            "checkpoint": str(checkpoint),
            "what": what,
            "n": n,
            "seed": seed,
            "steps": steps,
            "boundaries": strip.boundaries.tolist(),
            "columns": columns,
        },
    )
    return f"{n} samples x {len(columns)} columns (" + ", ".join(columns) + f") -> {png}"
