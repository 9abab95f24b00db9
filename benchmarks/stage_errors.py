"""Where a trained model's velocity is wrong: the conditional flow-matching error on held-out images,
split by band and binned in k, for several runs side by side (the same images, noise and k for all).

The conditional target's own variance is the same for every model of the same path, so differences
between runs of one path are differences in their error against the marginal velocity. A staged run
and its full-resolution twin share a path: their gap per (band, k bin) says which stage loses.

    python benchmarks/stage_errors.py runs/quality/cpu-1500-wavelet3_stag_logit \
        runs/quality/cpu-1500-wavelet3_stag_logit_stage --out docs/results/stage_errors_1500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from kflow.data import load_dataset
from kflow.metrics.evaluate import format_table
from kflow.runs import load_run


@torch.no_grad()
def band_errors(run, x_1: torch.Tensor, y, bins: int, seed: int = 0, batch: int = 500) -> torch.Tensor:
    """(bins, B) mean squared error per coefficient of band b, k drawn uniformly within each bin."""
    path, T = run.path, run.path.transform
    g = torch.Generator().manual_seed(seed)
    onehots = torch.eye(T.num_bands)
    sizes = torch.bincount(T.bands.cpu(), minlength=T.num_bands).double()
    out = torch.zeros(bins, T.num_bands, dtype=torch.float64)
    for i in range(bins):
        for j in range(0, len(x_1), batch):
            x1 = x_1[j : j + batch]
            x0 = torch.randn(x1.shape, generator=g)
            k = (i + torch.rand(len(x1), generator=g)) / bins
            s = path.sample(x0, x1, k)
            v = run.model(s.x_k, s.k, None if y is None else y[j : j + batch])
            d = v - s.dx_k
            for b in range(T.num_bands):
                e = T.filter(d, onehots[b].expand(len(x1), -1))
                out[i, b] += e.double().pow(2).sum() / sizes[b]
        out[i] /= len(x_1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--n", type=int, default=2000, help="test images")
    ap.add_argument("--bins", type=int, default=12)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    test = load_dataset("fashion_mnist", "test", image_size=32)
    x_1, y = test.x[: args.n], test.y[: args.n]
    results = []
    for r in args.runs:
        run = load_run(r)
        x = x_1 if run.scale is None else run.scale.normalize(x_1)  # the model's own data scale
        e = band_errors(run, x, y if run.num_classes else None, args.bins)
        for i in range(args.bins):
            row = {"run": Path(r).name, "k": f"{i / args.bins:.2f}-{(i + 1) / args.bins:.2f}"}
            row.update({f"band{b}": float(e[i, b]) for b in range(e.shape[1])})
            row["all"] = float((e[i] * torch.bincount(run.path.transform.bands.cpu()).double()).sum() / x[0].numel())
            results.append(row)
        print(json.dumps(results[-args.bins :]), flush=True)
    cols = ["run", "k"] + [c for c in results[0] if c.startswith("band")] + ["all"]
    table = format_table(results, cols)
    print(table)
    if args.out:
        Path(args.out).with_suffix(".md").write_text(table + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
