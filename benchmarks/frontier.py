"""Quality against control as the band windows overlap: for runs of one transform trained at
several `path.overlap` values (0 = hard K-Flow ... 1 = FM), the FD ratio to FM (from the quality
benchmark's cells in each run folder) against the noise-splitting control: the mean correlation
of band 0 across samples that share band 0's noise (the rest drawn fresh), minus the same for
independent samples. FM is measured in the K-Flow run's bands (`--bands-of`).

    python benchmarks/frontier.py --runs "0=runs/quality/cpu-1500-wavelet2,0.25=runs/quality/cpu-1500-wavelet2_o25,\
0.5=runs/quality/cpu-1500-wavelet2_o50,0.75=runs/quality/cpu-1500-wavelet2_o75,1=runs/quality/cpu-1500-fm" \
        --out docs/results/frontier_cpu --figure docs/images/frontier.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noise_splitting import band_correlation  # noqa: E402

from kflow.recipe import load_run  # noqa: E402
from kflow.sampling import sample  # noqa: E402
from kflow.steering import split_noise  # noqa: E402


def control(run, T, n: int, steps: int, seeds: int) -> dict:
    """Per band: correlation across samples with band 0's noise shared, and with independent noise."""
    shared, indep = [], []
    for s in range(seeds):
        x_0 = split_noise(T, n, fix_bands=[0], seed=100 * s)
        shared.append(band_correlation(T, sample(run.model, run.path, n, steps=steps, x_0=x_0).x))
        indep.append(band_correlation(T, sample(run.model, run.path, n, steps=steps, seed=100 * s + 7).x))

    def mean(rows):
        return [sum(r[b] for r in rows) / len(rows) for b in range(T.num_bands)]

    return {"shared": mean(shared), "independent": mean(indep)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True, help="comma-separated overlap=run_folder; overlap 1 is the FM run")
    ap.add_argument("--nfe", type=int, default=20, help="the quality cell whose FD is used")
    ap.add_argument("--n-quality", type=int, default=2000, help="samples of that quality cell")
    ap.add_argument("--n", type=int, default=64, help="samples per noise-splitting group")
    ap.add_argument("--seeds", type=int, default=4, help="noise-splitting groups, averaged")
    ap.add_argument("--steps", type=int, default=20, help="Euler steps for noise splitting")
    ap.add_argument("--out", default=None, help="write out.json and out.md")
    ap.add_argument("--figure", default=None, help="write the frontier plot here (PNG)")
    ap.add_argument("--replot", action="store_true", help="only redraw the figure from out.json")
    args = ap.parse_args()
    if args.replot:
        plot(json.loads(Path(args.out + ".json").read_text()), args.figure, args.nfe)
        return
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    runs = dict(item.split("=", 1) for item in args.runs.split(","))
    runs = {float(o): Path(p) for o, p in runs.items()}
    if 1.0 not in runs:
        raise SystemExit("--runs needs the FM run as overlap 1")
    kflow_bands = next(load_run(p).path.transform for o, p in sorted(runs.items()) if o < 1)

    def fd(folder: Path) -> float:
        cell = folder / f"quality-euler-{args.nfe}-n{args.n_quality}-seed0.json"
        return json.loads(cell.read_text())["fd"] if cell.exists() else float("nan")

    fm_fd = fd(runs[1.0])
    rows = []
    for overlap, folder in sorted(runs.items()):
        run = load_run(folder)
        c = control(run, kflow_bands, args.n, args.steps, args.seeds)
        rows.append(
            {
                "overlap": overlap,
                "run": str(folder),
                "fd": fd(folder),
                "fd_vs_fm": fd(folder) / fm_fd,
                "band0_shared": c["shared"][0],
                "band0_independent": c["independent"][0],
                "band0_control": c["shared"][0] - c["independent"][0],
                "band1_shared": c["shared"][1],
                "band1_independent": c["independent"][1],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    lines = [
        f"FD at NFE {args.nfe} ({args.n_quality} samples) and band-0 noise splitting ({args.seeds} groups of "
        f"{args.n}, {args.steps} Euler steps), measured in the bands of the K-Flow runs' transform",
        "",
        "| overlap | FD | FD / FM | band 0 corr., shared noise | band 0 corr., independent | control (difference) "
        "| band 1 corr., shared noise |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['overlap']:g} | {r['fd']:.2f} | {r['fd_vs_fm']:.3f} | {r['band0_shared']:.3f} | "
            f"{r['band0_independent']:.3f} | {r['band0_control']:.3f} | {r['band1_shared']:.3f} |"
        )
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
        Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    if args.figure:
        plot(rows, args.figure, args.nfe)


def plot(rows: list[dict], figure: str, nfe: int) -> None:
    """FD ratio to FM against the band-0 leak 1 - corr (shared band-0 noise; lower = band 0 held tighter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    xs, ys = [r["fd_vs_fm"] for r in rows], [1 - r["band0_shared"] for r in rows]
    ax.plot(xs, ys, "o-")
    for r, x, y in zip(rows, xs, ys):
        label = "FM" if r["overlap"] == 1 else ("hard K-Flow" if r["overlap"] == 0 else f"overlap {r['overlap']:g}")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_yscale("log")
    ax.axvline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel(f"FD / FM at NFE {nfe} (lower is better)")
    ax.set_ylabel("band-0 leak with band 0's noise shared\n1 - correlation (lower = tighter control)")
    ax.set_title("quality vs control as the band windows overlap (wavelet db6, 2 bands)", fontsize=9)
    fig.tight_layout()
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=130)
    print(f"figure -> {figure}")


if __name__ == "__main__":
    main()
