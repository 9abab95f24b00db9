"""How much sharing the noise of some bands fixes the generated content of those bands.

For a trained model, draw n samples that share the noise of `--fix` bands (the others fresh) and
n fully independent samples, and report per band the mean pairwise correlation of that band's
content across samples. Shared bands should correlate far more than under independent noise;
varied bands should not.

    python benchmarks/noise_splitting.py runs/quality/cpu-1500-wavelet3 --fix 0 --n 64
    python benchmarks/noise_splitting.py runs/quality/cpu-1500-fm --bands-of runs/quality/cpu-1500-wavelet3 --fix 0
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from kflow.runs import load_run
from kflow.sampling import sample
from kflow.steering import split_noise


def band_correlation(T, x: torch.Tensor) -> list[float]:
    """Per band: mean over pairs i != j of the correlation of band b of x_i and x_j."""
    c = T.analyze(x.double())
    out = []
    for b in range(T.num_bands):
        z = c[:, T.bands == b]
        z = z - z.mean(1, keepdim=True)
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        g = z @ z.T
        n = len(z)
        out.append(((g.sum() - g.diagonal().sum()) / (n * (n - 1))).item())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--fix", default="0", help="comma-separated bands whose noise is shared")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=4, help="independent groups, averaged")
    ap.add_argument(
        "--bands-of",
        default=None,
        help="split and measure in the bands of this other run's transform (e.g. an FM model in the "
        "wavelet bands of a K-Flow run)",
    )
    args = ap.parse_args()
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    run = load_run(args.checkpoint)
    T = load_run(args.bands_of).path.transform if args.bands_of else run.path.transform
    fix = [int(b) for b in args.fix.split(",")]
    shared, indep = [], []
    for s in range(args.seeds):
        x_0 = split_noise(T, args.n, fix_bands=fix, seed=100 * s)
        shared.append(band_correlation(T, sample(run.model, run.path, args.n, steps=args.steps, x_0=x_0).x))
        indep.append(band_correlation(T, sample(run.model, run.path, args.n, steps=args.steps, seed=100 * s + 7).x))
    mean = lambda rows: [sum(r[b] for r in rows) / len(rows) for b in range(T.num_bands)]
    res = {
        "checkpoint": args.checkpoint,
        "bands_of": args.bands_of or args.checkpoint,
        "fixed_bands": fix,
        "n": args.n,
        "groups": args.seeds,
        "shared_noise": mean(shared),
        "independent": mean(indep),
    }
    print("| band | fixed? | correlation, shared noise | correlation, independent |")
    print("|---|---|---|---|")
    for b in range(T.num_bands):
        print(f"| {b} | {'yes' if b in fix else 'no'} | {res['shared_noise'][b]:.3f} | {res['independent'][b]:.3f} |")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
