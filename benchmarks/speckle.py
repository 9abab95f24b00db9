"""Speckle in x4 box super-resolution: the share of the clean images' black background (< -0.99)
that the restoration makes brighter than -0.5, for runs of benchmarks/quality.py. Compares the
measurement correction restricted to the started bands (kflow.steering.restore) with the pixel-space
A^+ correction it replaced (`--old-restore FILE`: that version of restore.py, e.g. from git show).

    python benchmarks/speckle.py fm wavelet2 wavelet2_o50 --old-restore /tmp/old_restore.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os

from kflow.data import load_dataset
from kflow.runs import load_run
from kflow.steering import make_degradation, restore


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rows", nargs="+", help="rows of benchmarks/quality.py (run folders runs/quality/cpu-1500-ROW)")
    ap.add_argument("--work", default="runs/quality/cpu-1500-")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--old-restore", default=None, help="a restore.py with the A^+ correction, to compare")
    args = ap.parse_args()
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    variants = [("band-restricted", restore)]
    if args.old_restore:
        spec = importlib.util.spec_from_file_location("old_restore", args.old_restore)
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        variants.insert(0, ("pixel A^+", old.restore))
    test = load_dataset("fashion_mnist", "test", image_size=32, limit=args.n).x
    background = test < -0.99
    A = make_degradation("sr_box", (1, 32, 32), factor=4)
    y = A(test)
    print("| run | correction | background pixels > -0.5 | mean background |")
    print("|---|---|---|---|")
    for row in args.rows:
        run = load_run(args.work + row)
        for name, fn in variants:
            x = fn(run.model, run.path, y, A, steps=args.steps).x.clamp(-1, 1)
            bg = x[background]
            print(f"| {row} | {name} | {100 * (bg > -0.5).float().mean():.2f}% | {bg.mean():.3f} |", flush=True)


if __name__ == "__main__":
    main()
