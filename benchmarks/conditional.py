"""Class-conditional K-Flow vs flow matching: condition dropping (CDR), class-conditional FD and
the classifier accuracy of conditional samples, side by side in one run on Fashion-MNIST.

Each row trains the quality benchmark's backbone and budget with labels (label dropout 0.1, so
the same network is also the unconditional model), then samples `--per-class` images of every
class twice with the same noise: with the class for all of k ("full"), and with the class only
while k < keep_until ("dropped", the paper's condition dropping). Per-class FD is measured in the
project classifier's features against that class of the test split, and
CDR = mean_c FD_dropped(c) / FD_full(c) (NOTES.md; 1 is ideal, lower is better).

    python benchmarks/conditional.py --profile cpu --out docs/results/conditional_cpu   # ~1 h, 2 cores
    python benchmarks/conditional.py --rows fm,wavelet3 --steps 300 --per-class 50      # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import PROFILES, config_for, report, setup  # noqa: E402  (the same rows, backbone and budget)

from kflow.metrics import cdr, per_class_fd, score_features  # noqa: E402
from kflow.metrics.evaluate import format_table  # noqa: E402
from kflow.recipe import load_run  # noqa: E402
from kflow.sampling import sample  # noqa: E402
from kflow.steering import class_conditional  # noqa: E402
from kflow.training import train  # noqa: E402


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
    device, hw, clf, real, real_y = setup(args.classifier)
    classes = sorted(set(real_y.tolist()))
    y = torch.arange(len(classes)).repeat_interleave(args.per_class)  # (N,) every class, same order in every row
    noise = torch.randn(len(y), 1, 32, 32, generator=torch.Generator().manual_seed(args.seed))

    results = []
    for row in args.rows.split(","):
        over = [
            *prof["model"],
            f"train.steps={steps}",
            f"train.batch_size={prof['batch']}",
            f"train.seed={args.seed}",
            f"out_dir={args.work}/{args.profile}-{steps}-{row}-cond",
            "train.sample_every=0",
            f"train.ckpt_every={steps}",
            "data.labels=true",
            "train.label_dropout=0.1",
        ]
        cfg = config_for(row, over)
        t0 = time.time()
        res = train(cfg, resume=True)
        train_s = time.time() - t0
        run = load_run(res.out_dir, device=device)
        fds = {}
        for setting, keep in [("full", 1.0), ("dropped", args.keep_until)]:
            tag = f"cond-{setting}-{keep}-g{args.guidance}-euler{args.nfe}-n{len(y)}-seed{args.seed}"
            done = Path(cfg.out_dir) / f"{tag}.json"  # finished cells are reused
            if done.exists():
                r = json.loads(done.read_text())
            else:
                t1 = time.time()
                velocity = class_conditional(run.model, scale=args.guidance, keep_until=keep)
                out = sample(
                    run.model, run.path, len(y), steps=args.nfe, x_0=noise, y=y, velocity=velocity, device=device
                )
                x = out.x.clamp(-1, 1)
                feats = clf.embed(x)
                acc = (clf.predict(x) == y).float().mean().item()
                pc = per_class_fd(feats, y, real, real_y)
                sc = score_features(feats, real)
                r = dict(
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
                    train_s=train_s,
                    steps=steps,
                )
                done.write_text(json.dumps(r))
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
        f"hardware: {hw}; profile {args.profile}: {steps} steps x batch {prof['batch']}, label dropout 0.1; "
        f"{args.per_class} samples per class x {len(classes)} classes per setting, Euler NFE {args.nfe}, "
        f"guidance {args.guidance}, noise seed {args.seed}; classifier test accuracy {clf.info.test_accuracy:.4f}"
    )
    report(head, table, results, args.out)


if __name__ == "__main__":
    main()
