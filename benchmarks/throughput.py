"""Training throughput (images/s) of the default Fashion-MNIST UNet for FM and each K-Flow
transform, measured side by side in one run with the real Trainer (interleaved rounds, so drift
of the machine hits every row alike), plus the sampler's overhead over bare forward passes.

    python benchmarks/throughput.py [--rounds 3] [--steps 10] [--batch 128] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from kflow.config import load_config
from kflow.sampling import sample
from kflow.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
ROWS = ["fm", "fourier2", "fourier3", "wavelet2", "wavelet3", "pca2", "pca3"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="training steps per row per round")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sampler-only", action="store_true", help="skip the training table")
    ap.add_argument("--sampler-rows", default="fm,wavelet3,fourier3,pca3")
    args = ap.parse_args()
    os.environ["KFLOW_PROGRESS"] = "0"
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor() or platform.machine()
    print(f"device: {dev} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    with TemporaryDirectory() as tmp:
        trainers = {}
        for row in ROWS:
            cfg = load_config(ROOT / "configs" / f"fmnist_{row}.yaml",
                              [f"out_dir={tmp}/{row}", f"train.batch_size={args.batch}", f"train.device={args.device}",
                               "train.ckpt_every=1000000", "train.log_every=1000000", "train.steps=1000000"])
            trainers[row] = Trainer(cfg)
            trainers[row].fit(until=2)  # warm-up
        times = {row: [] for row in ROWS}
        for _ in range(0 if args.sampler_only else args.rounds):
            for row, tr in trainers.items():
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                tr.fit(until=tr.step + args.steps)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                times[row].append(args.steps * args.batch / (time.perf_counter() - t))
        if not args.sampler_only:
            print_training(times, trainers)

        # sampler overhead: 64 images, 50 Euler steps vs 50 bare forward passes
        print("\n| run | 50 forward passes s | sample(50 Euler steps) s | overhead |")
        print("|---|---|---|---|")
        for row in args.sampler_rows.split(","):
            tr = trainers[row]
            model = tr.ema.eval()
            x = torch.randn(64, *tr.transform.shape, device=dev)
            k = torch.full((64,), 0.5, device=dev)

            def bare():
                with torch.no_grad():
                    for _ in range(50):
                        model(x, k)

            def sampled():
                sample(model, tr.path, 64, steps=50, device=dev)

            res = {}
            for fn in (bare, sampled, bare, sampled):
                t = time.perf_counter()
                fn()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                res.setdefault(fn.__name__, []).append(time.perf_counter() - t)
            b, s = min(res["bare"]), min(res["sampled"])
            print(f"| fmnist_{row} | {b:.2f} | {s:.2f} | {100 * (s / b - 1):+.1f}% |")


def print_training(times, trainers):
    fm = statistics.median(times["fm"])
    print("\n| run | transform | train images/s (median of rounds) | vs FM |")
    print("|---|---|---|---|")
    for row in ROWS:
        ips = statistics.median(times[row])
        print(f"| fmnist_{row} | {trainers[row].cfg.transform.name} | {ips:.1f} | {ips / fm:.3f} |")


if __name__ == "__main__":
    main()
