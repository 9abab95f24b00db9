"""Class-conditional K-Flow vs flow matching: condition dropping (CDR), class-conditional FD and
the classifier accuracy of conditional samples, side by side in one run on Fashion-MNIST.

Each row trains the quality benchmark's backbone and budget with labels (label dropout 0.1, so
the same network is also the unconditional model), then samples `--per-class` images of every
class twice with the same noise: with the class for all of k ("full"), and with the class only
while k < keep_until ("dropped", the paper's condition dropping). Per-class FD is measured in the
project classifier's features against that class of the test split, and
CDR = mean_c FD_dropped(c) / FD_full(c) (docs/maths.md; 1 is ideal, lower is better).

    python benchmarks/conditional.py --profile cpu --out docs/results/conditional_cpu   # ~1 h, 2 cores
    python benchmarks/conditional.py --rows fm,wavelet3 --steps 300 --per-class 50      # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from toolkit import PROFILES, TrainedRow, cell, report, row_config, setup  # the same rows, backbone and budget

from kflow.metrics import cdr, per_class_fd, score_features
from kflow.metrics.evaluate import format_table
from kflow.sampling import sample
from kflow.steering import class_conditional


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="cpu", choices=list(PROFILES))
    ap.add_argument("--rows", default="fm,wavelet3", help="comma-separated rows of benchmarks/quality.py")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--per-class", type=int, default=300, help="samples per class and setting")
    ap.add_argument("--nfe", type=int, default=20, help="Euler steps")
    ap.add_argument("--keep-until", type=float, default=0.3, help="condition dropping: class kept for k < this")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/quality")
    ap.add_argument("--classifier", default="classifiers/fashion_mnist.safetensors")
    ap.add_argument("--out", default=None, help="write markdown + JSON results here")
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    steps = args.steps or prof["steps"]
    env = setup(args.classifier)
    clf, real, real_y = env.clf, env.real, env.real_y
    classes = sorted(set(real_y.tolist()))
    y = torch.arange(len(classes)).repeat_interleave(args.per_class)  # (N,) every class, same order in every row
    noise = torch.randn(len(y), 1, 32, 32, generator=torch.Generator().manual_seed(args.seed))

    results = []
    for row in args.rows.split(","):
        extra = ["data.labels=true", "train.label_dropout=0.1"]
        cfg = row_config(row, args.profile, steps, args.seed, args.work, tag="-cond", extra=extra)
        tr = TrainedRow(cfg, env.device)
        fds = {}
        for setting, keep in [("full", 1.0), ("dropped", args.keep_until)]:

            def measure(setting=setting, keep=keep):
                t1, run = time.time(), tr.run
                velocity = class_conditional(run.model, scale=args.guidance, keep_until=keep)
                out = sample(
                    run.model,
                    run.path,
                    len(y),
                    steps=args.nfe,
                    grid=tr.cfg.sample.grid,
                    step_allocation=tr.cfg.sample.step_allocation,  # the run's own steps per stage
                    x_0=noise,
                    y=y,
                    velocity_for=velocity,
                    device=env.device,
                )
                x = run.to_image(out.x).clamp(-1, 1)
                feats = clf.embed(x)
                acc = (clf.predict(x) == y).float().mean().item()
                pc = per_class_fd(feats, y, real, real_y)
                sc = score_features(feats, real)
                return dict(
                    row=row,
                    transform=cfg.transform.name,
                    bands=run.path.num_bands,
                    setting=setting,
                    keep_until=keep,
                    guidance=args.guidance,
                    nfe=out.nfe,
                    fd=sc.fd,
                    precision=sc.precision,
                    recall=sc.recall,
                    class_fd=sum(pc.values()) / len(pc),
                    accuracy=acc,
                    per_class_fd={str(c): v for c, v in pc.items()},
                    n=len(y),
                    per_class=args.per_class,
                    seed=args.seed,
                    sample_s=time.time() - t1,
                    train_s=tr.train_s,
                    steps=steps,
                )

            tag = f"cond-{setting}-{keep}-g{args.guidance}-euler{args.nfe}-n{len(y)}-seed{args.seed}"
            r = cell(Path(cfg.out_dir) / f"{tag}.json", measure)
            fds[setting] = {int(c): v for c, v in r["per_class_fd"].items()}
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "per_class_fd"}), flush=True)
        ratio = cdr(fds["dropped"], fds["full"])
        for r in results[-2:]:
            r["cdr"] = ratio
    table = format_table(
        results, ["row", "setting", "keep_until", "fd", "class_fd", "accuracy", "precision", "recall", "cdr"]
    )
    head = (
        f"hardware: {env.hardware}; profile {args.profile}: {steps} steps x batch {prof['batch']}, label dropout 0.1; "
        f"{args.per_class} samples per class x {len(classes)} classes per setting, Euler NFE {args.nfe}, "
        f"guidance {args.guidance}, noise seed {args.seed}; classifier test accuracy {clf.info.test_accuracy:.4f}"
    )
    report(head, table, results, args.out)


if __name__ == "__main__":
    main()
