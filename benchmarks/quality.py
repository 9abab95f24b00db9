"""K-Flow vs flow matching at equal compute on Fashion-MNIST 32x32, side by side in one run.

Every row trains the same backbone with the same batch, steps, learning rate, seed and data
order (the configs differ only in `transform` / `path`), then samples at several NFE with the
same noise and is scored in the features of the project's classifier against the test split.

    python benchmarks/quality.py --profile cpu      # about 2.5 hours on 2 cores; rerun to continue
    python benchmarks/quality.py --profile gpu      # bigger model, more steps
    python benchmarks/quality.py --rows fm,wavelet3 --steps 300 --n 1000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from toolkit import PROFILES, TrainedRow, cell, report, row_config, score_images, setup

from kflow.metrics.evaluate import format_table
from kflow.sampling import sample


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu", choices=list(PROFILES))
    ap.add_argument("--rows", default=None, help="comma-separated: fm, fourier2, wavelet3, pca2, ... or variants")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="samples per row and NFE")
    ap.add_argument("--nfe", default=None, help="comma-separated Euler step counts")
    ap.add_argument("--dopri5", choices=["profile", "yes", "no"], default="profile", help="also sample with dopri5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/quality", help="run folders (reused: finished trainings are skipped)")
    ap.add_argument("--classifier", default="classifiers/fashion_mnist.safetensors")
    ap.add_argument("--out", default=None, help="write markdown + JSON results here")
    ap.add_argument("--sample-batch", type=int, default=500, help="images per sampling batch")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides for every row (key=value)")
    ap.add_argument("--train-only", action="store_true", help="train the rows, sample nothing (a speed probe)")
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    rows = (args.rows or prof["rows"]).split(",")
    steps, n = args.steps or prof["steps"], args.n or prof["n"]
    nfes = [int(v) for v in args.nfe.split(",")] if args.nfe else prof["nfe"]
    env = setup(args.classifier)
    print(f"classifier test accuracy {env.clf.info.test_accuracy:.4f}; reference: test split ({len(env.real)})")

    results = []
    noise = torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(args.seed))  # same noise for every row
    for row in rows:
        cfg = row_config(row, args.profile, steps, args.seed, args.work, extra=args.set)
        tr = TrainedRow(cfg, env.device)
        if args.train_only:
            print(json.dumps(dict(row=row, steps=steps, train_s=tr.train_s, train_images_per_s=tr.images_per_s)))
            continue
        dopri5 = prof["dopri5"] if args.dopri5 == "profile" else args.dopri5 == "yes"
        for solver, k in [("euler", k) for k in nfes] + ([("dopri5", 0)] if dopri5 else []):

            def measure(solver=solver, k=k):
                t1, run = time.time(), tr.run
                out = sample(
                    run.model,
                    run.path,
                    n,
                    solver=solver,
                    steps=max(k, 1),
                    grid=cfg.sample.grid,
                    step_allocation=cfg.sample.step_allocation,  # the run's own steps per stage
                    x_0=noise,
                    device=env.device,
                    batch_size=args.sample_batch,
                )
                scores = score_images(env.clf, run.to_image(out.x), env.real)
                return dict(
                    row=row,
                    transform=cfg.transform.name,
                    bands=run.path.num_bands,
                    bump=cfg.path.bump,
                    solver=solver,
                    nfe=out.nfe,
                    **scores,
                    train_images_per_s=tr.images_per_s,
                    n=n,
                    sample_s=time.time() - t1,
                    train_s=tr.train_s,
                    steps=steps,
                )

            r = cell(Path(cfg.out_dir) / f"quality-{solver}-{k}-n{n}-seed{args.seed}.json", measure)
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.train_only:
        return

    table = compare(results)
    head = (
        f"hardware: {env.hardware}; profile {args.profile}: {steps} steps x batch {prof['batch']}, {n} samples per row "
        f"(noise seed {args.seed}, training seed {args.seed}), "
        f"classifier test accuracy {env.clf.info.test_accuracy:.4f}"
    )
    report(head, table, results, args.out)


def compare(results: list[dict]) -> str:
    """Each cell's FD as a ratio to plain FM, to the best FM row (plain or tuned) and to the best FM at
    twice the Euler NFE; returns the markdown table."""

    def cell(r):  # rows are compared at the same Euler NFE, or both adaptive (dopri5's NFE differs per row)
        return (r["solver"], r["nfe"] if r["solver"] == "euler" else None)

    fm = {cell(r): r["fd"] for r in results if r["row"] == "fm"}
    # the reference is the best FM row (plain or tuned) at the same solver and NFE
    best_fm: dict = {}
    for r in results:
        if r["row"] == "fm" or r["row"].startswith("fm_"):
            key = cell(r)
            best_fm[key] = min(best_fm.get(key, float("inf")), r["fd"])
    best_fm_nfe = {nfe: fd for (solver, nfe), fd in best_fm.items() if solver == "euler"}
    for r in results:
        r["fd_vs_fm"] = r["fd"] / fm[cell(r)] if cell(r) in fm else float("nan")
        r["fd_vs_best_fm"] = r["fd"] / best_fm[cell(r)] if cell(r) in best_fm else float("nan")
        twice = 2 * r["nfe"] if r["solver"] == "euler" else None  # the best FM at twice the NFE
        r["fd_vs_best_fm_2x_nfe"] = r["fd"] / best_fm_nfe[twice] if twice in best_fm_nfe else float("nan")
    return format_table(
        results,
        [
            "row",
            "solver",
            "nfe",
            "fd",
            "precision",
            "recall",
            "train_images_per_s",
            "fd_vs_fm",
            "fd_vs_best_fm",
            "fd_vs_best_fm_2x_nfe",
        ],
    )


if __name__ == "__main__":
    main()
