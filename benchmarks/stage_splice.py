"""Which stage's network costs the FD: sample with two trained models of the same path, a staged run
(each stage at its own resolution) and its full-resolution twin, switching between them by stage.
Both estimate the same marginal velocity, so a spliced sampler is a valid sampler of that path; the
FD when the staged network runs only stage s (the twin everywhere else) is what stage s's network
loses, with the same noise, grid and steps in every row.

    cd benchmarks && python stage_splice.py --staged ../runs/digits32/cpu-1500-wavelet3_staged \
        --full ../runs/digits32/cpu-1500-wavelet3_stag_logit --dataset digits32 \
        --classifier ../classifiers/digits32.safetensors --out ../docs/results/digits32_splice
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from toolkit import cell, report, score_images, setup

from kflow.metrics.evaluate import format_table
from kflow.runs import load_run
from kflow.sampling import sample
from kflow.utils.tensors import per_sample


class Splice(torch.nn.Module):
    """model(x, k, y): the staged network on the stages in `staged_on`, the full one elsewhere."""

    def __init__(self, staged, full, path, staged_on: set[int]):
        super().__init__()
        self.staged, self.full, self.path, self.staged_on = staged, full, path, staged_on
        self.cfg = staged.cfg

    def forward(self, x, k, y=None):
        stage = self.path.stage(per_sample(k, x))
        if not bool((stage == stage[0]).all()):
            raise ValueError("a spliced call mixes stages; sample on the band grid")
        return (self.staged if int(stage[0]) in self.staged_on else self.full)(x, k, y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--staged", required=True, help="run folder of the staged model")
    ap.add_argument("--full", required=True, help="run folder of the full-resolution model of the same path")
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--classifier", default="../classifiers/fashion_mnist.safetensors")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--nfe", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    env = setup(args.classifier, args.dataset)
    staged, full = load_run(args.staged, device=env.device), load_run(args.full, device=env.device)
    path, cfg = staged.path, staged.cfg
    if full.path.num_bands != path.num_bands or not torch.equal(full.path.windows(), path.windows()):
        raise SystemExit("the two runs do not share a path (band windows differ); give twins of one schedule")
    alloc = cfg.sample.step_allocation
    noise = torch.randn(args.n, *path.transform.shape, generator=torch.Generator().manual_seed(args.seed))
    B = path.num_bands
    rows = {"full everywhere": set(), "staged everywhere": set(range(B))}
    rows.update({f"staged on stage {s} only": {s} for s in range(B)})
    results = []
    for name, on in rows.items():

        def measure(on=on, name=name):
            model = Splice(staged.model, full.model, path, on)
            out = sample(
                model,
                path,
                args.n,
                steps=args.nfe,
                grid=cfg.sample.grid,
                x_0=noise,
                device=env.device,
                step_allocation=alloc,
            )
            return dict(row=name, nfe=out.nfe, **score_images(env.clf, staged.to_image(out.x), env.real, env.real_y))

        tag = "-".join(map(str, sorted(on))) or "none"
        r = cell(Path(args.staged) / f"splice-{Path(args.full).name}-{tag}-nfe{args.nfe}-n{args.n}.json", measure)
        results.append(r)
        print(json.dumps(r), flush=True)
    base = results[0]["fd"]
    for r in results:
        r["fd_vs_full"] = r["fd"] / base
    head = (
        f"hardware: {env.hardware}; staged {args.staged} vs full-resolution {args.full}; {args.n} samples, "
        f"Euler NFE {args.nfe}, steps per stage {alloc}, noise seed {args.seed}"
    )
    report(
        head,
        format_table(results, ["row", "nfe", "fd", "fd_vs_full", "precision", "recall", "class_tv"]),
        results,
        args.out,
    )


if __name__ == "__main__":
    main()
