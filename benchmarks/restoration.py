"""Training-free restoration on Fashion-MNIST test images: K-Flow vs FM (the same projection
method on the one-band path) vs classical baselines, at equal NFE, PSNR and SSIM (scikit-image).

    python benchmarks/restoration.py --kflow runs/quality/cpu-1500-wavelet3 --fm runs/quality/cpu-1500-fm \
        --n 500 --steps 50 --out docs/results/restoration

Both models are unconditional and never saw a degraded image.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from kflow.data import load_dataset
from kflow.metrics.evaluate import format_table
from kflow.metrics.psnr import psnr
from kflow.runs import load_run
from kflow.steering import baseline, make_degradation, restore

TASKS = [
    ("sr_box", dict(factor=2)),
    ("sr_box", dict(factor=4)),
    ("sr_bicubic", dict(factor=2)),
    ("sr_bicubic", dict(factor=4)),
    ("blur", dict(sigma=1.0)),
    ("blur", dict(sigma=2.0)),
    ("inpaint", {}),
]


def ssim(x: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    from skimage.metrics import structural_similarity

    a, b = x.clamp(-1, 1).double().numpy(), ref.double().numpy()
    return np.array([structural_similarity(a[i, 0], b[i, 0], data_range=2.0) for i in range(len(a))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kflow", required=True)
    ap.add_argument("--fm", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--noise", default="0,0.05")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    x = load_dataset("fashion_mnist", "test", image_size=32).x[: args.n]
    runs = {"K-Flow": load_run(args.kflow), "FM": load_run(args.fm)}
    # each finished (task, noise) row is appended to <out>.rows.jsonl and reused on a rerun, so a
    # killed run loses at most the row in progress
    cache = Path(args.out).with_suffix(".rows.jsonl") if args.out else None
    done = {}
    if cache and cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            if r.get("n") == args.n and r.get("steps") == args.steps:
                done[(r["task"], r["noise"])] = r
    rows = []
    for sigma_y in [float(v) for v in args.noise.split(",")]:
        for task, kw in TASKS:
            A = make_degradation(task, tuple(x.shape[1:]), sigma_y=sigma_y, **kw)
            y = A(x, seed=1)
            label = task + (f" x{kw['factor']}" if "factor" in kw else f" sigma {kw['sigma']}" if "sigma" in kw else "")
            if (label, sigma_y) in done:
                rows.append(done[(label, sigma_y)])
                continue
            row = {"task": label, "noise": sigma_y, "n": args.n, "steps": args.steps}
            b = baseline(y, A)
            row["baseline_psnr"], row["baseline_ssim"] = psnr(b, x).mean().item(), ssim(b, x).mean()
            for name, run in runs.items():
                t = time.time()
                out = restore(run.model, run.path, y, A, steps=args.steps, seed=0)
                row[f"{name}_psnr"], row[f"{name}_ssim"] = (
                    psnr(out.x.clamp(-1, 1), x).mean().item(),
                    ssim(out.x, x).mean(),
                )
                row["nfe"], row[f"{name}_s"] = out.nfe, time.time() - t
            rows.append(row)
            print(json.dumps(row, default=float), flush=True)
            if cache:
                cache.parent.mkdir(parents=True, exist_ok=True)
                with cache.open("a") as f:
                    f.write(json.dumps(row, default=float) + "\n")
    keys = [
        "task",
        "noise",
        "baseline_psnr",
        "FM_psnr",
        "K-Flow_psnr",
        "baseline_ssim",
        "FM_ssim",
        "K-Flow_ssim",
        "nfe",
    ]
    head = (
        f"{args.n} Fashion-MNIST test images (32x32, [-1, 1]); K-Flow {args.kflow} vs FM {args.fm}; Euler-type "
        f"steps {args.steps}; noise seed 1, sampling seed 0; "
        "baselines: bicubic (SR), Wiener (blur), zero fill (inpaint)"
    )
    table = format_table(rows, keys)
    print("\n" + head + "\n\n" + table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).with_suffix(".md").write_text(head + "\n\n" + table + "\n")
        Path(args.out).with_suffix(".json").write_text(
            json.dumps({"header": head, "rows": rows}, indent=2, default=float)
        )


if __name__ == "__main__":
    main()
