"""Regenerate every figure of docs/ from checkpoints of the shipped Fashion-MNIST configs.

    .venv/bin/python benchmarks/figures.py            # reuses runs/quality/cpu-1500-* when present
    make demo && cp outputs/demo/samples.png docs/images/demo_samples.png   # the README pictures
    cp outputs/demo/band_strip.png docs/images/demo_band_strip.png

The runs are the CPU profile of benchmarks/quality.py (configs/fmnist_*.yaml with a small UNet,
1500 steps, batch 64, seed 0): missing ones are trained here with exactly those settings, so the
figures and the quality table describe the same models. Every figure comes with its JSON.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from toolkit import PROFILES, ROOT, row_config

from kflow.inspection import inspect_data, inspect_path, inspect_strip
from kflow.training import train

PAIRS = {"wavelet": "wavelet3", "fourier": "fourier2", "pca": "pca2"}  # decomposition -> K-Flow row


def run_dir(row: str, work: str, steps: int) -> Path:
    cfg = row_config(row, "cpu", steps, 0, work)
    return train(cfg, resume=True).out_dir  # returns at once when the run is finished


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/quality")
    ap.add_argument("--steps", type=int, default=PROFILES["cpu"]["steps"])
    ap.add_argument("--n", type=int, default=256, help="samples per trajectory analysis")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()
    out, tmp = Path(args.out), Path(args.out) / "_json"
    print(inspect_data("fashion_mnist", tmp / "data", limit=10000, num_bands=3))
    shutil.copy(tmp / "data" / "band_energy.png", out / "fmnist_band_energy.png")
    fm = run_dir("fm", args.work, args.steps)
    for name, row in PAIRS.items():
        kf = run_dir(row, args.work, args.steps)
        print(inspect_path([fm, kf], tmp / name, names=["FM", f"K-Flow {row}"], n=args.n, steps=100, seed=0))
        shutil.copy(tmp / name / "spectral_evolution.png", out / f"spectral_evolution_{name}.png")
        shutil.copy(tmp / name / "projection_ratio.png", out / f"projection_ratio_{name}.png")
        print(inspect_strip(kf, tmp / f"strip_{row}", n=6, steps=60, seed=7, what="all"))
        shutil.copy(tmp / f"strip_{row}" / "strip.png", out / f"strip_{row}.png")


if __name__ == "__main__":
    main()
