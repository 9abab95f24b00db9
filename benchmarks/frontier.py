"""Quality against control as the band windows overlap: for runs of one transform trained at
several `path.overlap` values (0 = hard K-Flow ... 1 = FM), the FD ratio to FM (from the quality
benchmark's cells in each run folder) against the noise-splitting control: the mean correlation
of band 0 across samples that share band 0's noise (the rest drawn fresh), minus the same for
independent samples. FM is measured in the K-Flow run's bands (`--bands-of`). Where a run has a
class-conditional twin (`RUN-cond`, trained by benchmarks/conditional.py), its CDR at `--keep-until`
is the second control axis.

    python benchmarks/frontier.py --runs "0=runs/quality/cpu-1500-wavelet2,0.25=runs/quality/cpu-1500-wavelet2_o25,\
0.5=runs/quality/cpu-1500-wavelet2_o50,0.75=runs/quality/cpu-1500-wavelet2_o75,1=runs/quality/cpu-1500-fm" \
        --out docs/results/frontier_cpu --figure docs/images/frontier.png
    python benchmarks/frontier.py --replot --out docs/results/frontier_cpu --also docs/results/frontier_cpu_o50_win \
        --figure docs/images/frontier.png     # redraw, with the rows of a second run and the CDR cells
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from noise_splitting import band_correlation

from kflow.metrics import cdr
from kflow.runs import load_run
from kflow.sampling import sample
from kflow.steering import split_noise


def control(run, T, n: int, steps: int, seeds: int) -> dict:
    """Per band: correlation across samples with band 0's noise shared, and with independent noise."""
    shared, indep = [], []
    own = dict(grid=run.cfg.sample.grid, step_allocation=run.cfg.sample.step_allocation)  # the run's steps per stage
    for s in range(seeds):
        x_0 = split_noise(T, n, fix_bands=[0], seed=100 * s)
        shared.append(band_correlation(T, sample(run.model, run.path, n, steps=steps, x_0=x_0, **own).x))
        indep.append(band_correlation(T, sample(run.model, run.path, n, steps=steps, seed=100 * s + 7, **own).x))

    def mean(rows):
        return [sum(r[b] for r in rows) / len(rows) for b in range(T.num_bands)]

    return {"shared": mean(shared), "independent": mean(indep)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default=None, help="comma-separated overlap=run_folder; overlap 1 is the FM run")
    ap.add_argument("--nfe", type=int, default=20, help="the quality cell whose FD is used")
    ap.add_argument("--n-quality", type=int, default=2000, help="samples of that quality cell")
    ap.add_argument("--n", type=int, default=64, help="samples per noise-splitting group")
    ap.add_argument("--seeds", type=int, default=4, help="noise-splitting groups, averaged")
    ap.add_argument("--steps", type=int, default=20, help="Euler steps for noise splitting")
    ap.add_argument("--out", default=None, help="write out.json and out.md")
    ap.add_argument("--figure", default=None, help="write the frontier plot here (PNG)")
    ap.add_argument("--replot", action="store_true", help="only redraw the figure (and table) from out.json")
    ap.add_argument("--also", default=None, help="with --replot: comma-separated further results (their .json) to join")
    ap.add_argument("--keep-until", type=float, default=0.3, help="the CDR cells' condition-dropping k")
    args = ap.parse_args()
    if args.replot:
        rows = json.loads(Path(args.out + ".json").read_text())
        for extra in (args.also or "").split(","):
            if extra:
                rows += [r for r in json.loads(Path(extra + ".json").read_text()) if r["overlap"] < 1]
        attach_cdr(rows, args.keep_until)
        write(rows, args)
        return
    if not args.runs:
        raise SystemExit("give --runs overlap=run_folder,... (or --replot with --out)")
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
    attach_cdr(rows, args.keep_until)
    write(rows, args)


def cond_cells(folder: Path, keep: float) -> dict | None:
    """Per-class FDs of a class-conditional run's cells: full class, and class dropped at `keep`."""
    found = {}
    for setting, k in [("full", 1.0), ("dropped", keep)]:
        cells = sorted(folder.glob(f"cond-{setting}-{k}-g1.0-*.json"))
        if not cells:
            return None
        found[setting] = {int(c): v for c, v in json.loads(cells[-1].read_text())["per_class_fd"].items()}
    return found


def attach_cdr(rows: list[dict], keep: float) -> None:
    """CDR (and its ratio to FM's) for every row whose run has a `-cond` twin; NaN where none."""
    for r in rows:
        cells = cond_cells(Path(r["run"] + "-cond"), keep)
        r["cdr"] = cdr(cells["dropped"], cells["full"]) if cells else float("nan")
    fm = next((r["cdr"] for r in rows if r["overlap"] == 1), float("nan"))
    for r in rows:
        r["cdr_vs_fm"] = r["cdr"] / fm
    rows.sort(key=lambda r: (r["overlap"], r["run"]))


def label(r: dict) -> str:
    if r["overlap"] == 1:
        return "FM"
    name = "hard K-Flow" if r["overlap"] == 0 else f"overlap {r['overlap']:g}"
    return name + (", window emb." if r["run"].endswith("_win") else "")


def write(rows: list[dict], args) -> None:
    lines = [
        f"FD at NFE {args.nfe} and band-0 noise splitting (groups sharing band 0's noise, Euler), measured in "
        f"the bands of the K-Flow runs' transform; CDR with the class dropped at k = {args.keep_until} "
        "(benchmarks/conditional.py cells of the `-cond` run)",
        "",
        "| row | FD | FD / FM | band 0 corr., shared noise | band 0 corr., independent | control (difference) "
        "| band 1 corr., shared noise | CDR | CDR / FM |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {label(r)} | {r['fd']:.2f} | {r['fd_vs_fm']:.3f} | {r['band0_shared']:.3f} | "
            f"{r['band0_independent']:.3f} | {r['band0_control']:.3f} | {r['band1_shared']:.3f} | "
            f"{r['cdr']:.2f} | {r['cdr_vs_fm']:.2f} |"
        )
    print("\n".join(lines))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if not args.replot:  # a measuring run keeps its own rows; a replot writes the joined table next to them
            Path(args.out + ".json").write_text(json.dumps(rows, indent=2) + "\n")
        Path(args.out + ("_joined.md" if args.replot else ".md")).write_text("\n".join(lines) + "\n")
    if args.figure:
        plot(rows, args.figure, args.nfe, args.keep_until)


def plot(rows: list[dict], figure: str, nfe: int, keep: float) -> None:
    """FD ratio to FM against the two control measures: the band-0 leak 1 - corr (shared band-0 noise;
    lower = band 0 held tighter) and, where measured, the CDR ratio to FM (lower = the class kept better)."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_cdr = [r for r in rows if not math.isnan(r["cdr"])]
    fig, axes = plt.subplots(1, 2 if with_cdr else 1, figsize=(10 if with_cdr else 5, 3.8), squeeze=False)
    panels = [(rows, lambda r: 1 - r["band0_shared"], "band-0 leak with band 0's noise shared\n1 - correlation")]
    if with_cdr:
        panels.append((with_cdr, lambda r: r["cdr_vs_fm"], f"CDR / FM's CDR (class dropped at k = {keep:g})"))
    for ax, (pts, y_of, ylabel) in zip(axes[0], panels):
        line = [r for r in pts if not r["run"].endswith("_win")]  # the overlap sweep, k-embedding
        ax.plot([r["fd_vs_fm"] for r in line], [y_of(r) for r in line], "o-", label="overlap sweep")
        win = [r for r in pts if r["run"].endswith("_win")]
        if win:
            ax.plot([r["fd_vs_fm"] for r in win], [y_of(r) for r in win], "s", color="C3", label="window k-embedding")
        for r in pts:
            below = r["run"].endswith("_win")  # next to its k-embedding twin at the same overlap
            ax.annotate(
                label(r),
                (r["fd_vs_fm"], y_of(r)),
                textcoords="offset points",
                xytext=(5, -10 if below else 4),
                fontsize=7,
            )
        ax.axvline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_xlabel(f"FD / FM at NFE {nfe} (lower is better)")
        ax.set_ylabel(ylabel + "\n(lower = tighter control)", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    axes[0][0].set_yscale("log")
    if with_cdr:
        axes[0][1].axhline(0.6, color="C2", lw=0.8, ls=":")  # the target for the CDR ratio
        axes[0][1].annotate("CDR target 0.6x", (1.0, 0.6), textcoords="offset points", xytext=(4, -10), fontsize=7)
    fig.suptitle("quality vs control as the band windows overlap (wavelet db6, 2 bands, CPU profile)", fontsize=9)
    fig.tight_layout()
    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=130)
    print(f"figure -> {figure}")


if __name__ == "__main__":
    main()
