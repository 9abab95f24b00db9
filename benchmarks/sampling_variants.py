"""How should a trained K-Flow model be sampled? Sampling-only variants on the runs benchmarks/quality.py
trained (no retraining): step allocation per band, projection onto the active band, solver.

    python benchmarks/sampling_variants.py --rows fm,wavelet3 --nfe 10,20 --n 2000 \
        --variants "euler;euler alloc=0.8,0.1,0.1;euler project" --out docs/results/sampling_variants_cpu

A variant is a solver name followed by options: `alloc=w0,w1,..` (steps per band in proportion to
these weights, indexed by band; default: in proportion to each band's k-interval), `project` (keep
only the active band of the velocity), `nudge=f` (on a band boundary, evaluate the velocity f of
the new band's k-interval inside it: kflow.sampling.wrappers.BoundaryNudge), `grid=band_logit` (the
step grid: `band`, the default, `band_logit` (steps at logit-normal quantiles inside every band segment,
for FM the logit-normal step spacing) or `uniform`). NFE counts velocity
evaluations (a heun step costs two);
`dopri5` is adaptive (rtol = atol = 1e-5, restarted at band boundaries) and runs once, whatever --nfe says.
FM (one band) gets the solver-only variants, so every solver is compared with FM under the same solver.
Every (row, variant, NFE) cell is cached in the run folder, so a rerun continues.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from toolkit import cell, report, score_images, setup

from kflow.config import CHOICES
from kflow.metrics.evaluate import format_table
from kflow.runs import load_run
from kflow.sampling import sample
from kflow.sampling.wrappers import BoundaryNudge, ModelVelocity

EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4, "dopri5": 0}  # 0: adaptive, --nfe does not apply


def parse_variant(text: str) -> dict:
    """'heun alloc=0.8,0.1,0.1 project' -> dict(solver='heun', alloc=[...], project=True)."""
    words = text.split()
    if not words or words[0] not in EVALS_PER_STEP:
        raise ValueError(f"variant {text!r} must start with a solver: {', '.join(EVALS_PER_STEP)}")
    v = dict(solver=words[0], alloc="length", project=False, nudge=0.0, grid="band")
    for w in words[1:]:
        if w == "project":
            v["project"] = True
        elif w.startswith("nudge="):
            v["nudge"] = float(w[len("nudge=") :])
        elif w.startswith("grid="):
            v["grid"] = w[len("grid=") :]
            if v["grid"] not in CHOICES["sample.grid"]:
                raise ValueError(
                    f"grid {v['grid']!r} in variant {text!r}; use one of {', '.join(CHOICES['sample.grid'])}"
                )
        elif w.startswith("alloc="):
            v["alloc"] = [float(s) for s in w[len("alloc=") :].split(",")]
        else:
            raise ValueError(
                f"unknown option {w!r} in variant {text!r}; use alloc=w0,w1,..., nudge=f, grid=g or project"
            )
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="fm,wavelet2,wavelet3,fourier2,pca2")
    ap.add_argument("--variants", default="euler", help="';'-separated, e.g. 'euler;euler project;heun'")
    ap.add_argument("--nfe", default="10,20")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/quality/cpu-1500-", help="run folder prefix; the row name is appended")
    ap.add_argument("--classifier", default="classifiers/fashion_mnist.safetensors")
    ap.add_argument("--out", default=None)
    ap.add_argument("--fm-row", default="fm", help="the row every other is compared with (under the same solver)")
    args = ap.parse_args()
    os.environ.setdefault("KFLOW_PROGRESS", "0")
    env = setup(args.classifier)
    nfes = [int(v) for v in args.nfe.split(",")]
    variants = [s.strip() for s in args.variants.split(";") if s.strip()]
    noise = torch.randn(args.n, 1, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    results = []
    for row in args.rows.split(","):
        folder = Path(args.work + row)
        if not (folder / "config.json").exists():
            raise SystemExit(f"no trained run at {folder}; train it first with benchmarks/quality.py --rows {row}")
        run = load_run(folder, device=env.device)
        for text in variants:
            v = parse_variant(text)
            if run.path.num_bands == 1 and (v["alloc"] != "length" or v["project"] or v["nudge"]):
                continue  # band options mean nothing with one band: FM gets the plain solvers only
            if v["alloc"] != "length" and len(v["alloc"]) != run.path.num_bands:
                continue  # allocation written for another number of bands
            per_step = EVALS_PER_STEP[v["solver"]]
            for nfe in nfes if per_step else [0]:
                steps = nfe // per_step if per_step else 1

                def measure(v=v, text=text, steps=steps, run=run, row=row):
                    t = time.time()
                    velocity = None
                    if v["nudge"]:
                        velocity = lambda y, m=run.model, p=run.path, f=v["nudge"]: BoundaryNudge(
                            ModelVelocity(m, y), p, f
                        )
                    out = sample(
                        run.model,
                        run.path,
                        args.n,
                        solver=v["solver"],
                        steps=steps,
                        x_0=noise,
                        project=v["project"],
                        step_allocation=v["alloc"],
                        grid=v["grid"],
                        device=env.device,
                        velocity_for=velocity,
                    )
                    scores = score_images(env.clf, run.to_image(out.x), env.real)
                    return dict(row=row, variant=text, nfe=out.nfe, **scores, n=args.n, sample_s=time.time() - t)

                name = f"variant-{text.replace(' ', '_')}-nfe{nfe or 'auto'}-n{args.n}-seed{args.seed}.json"
                r = cell(folder / name, measure)
                results.append(r)
                print(json.dumps(r), flush=True)

    fm_variants = {r["variant"] for r in results if r["row"] == args.fm_row and r["variant"] != r["variant"].split()[0]}

    def fm_key(r, nfe):  # FM under the same variant where FM ran it, else the same solver; at `nfe`, or
        # at whatever NFE an adaptive solver took
        solver = r["variant"].split()[0]
        name = r["variant"] if r["variant"] in fm_variants else solver
        return (name, nfe) if EVALS_PER_STEP[solver] else (name, None)

    fm = {fm_key(r, r["nfe"]): r["fd"] for r in results if r["row"] == args.fm_row}
    nan = float("nan")
    for r in results:
        r["fd_vs_fm"] = r["fd"] / fm.get(fm_key(r, r["nfe"]), nan)
        twice = fm_key(r, 2 * r["nfe"])
        r["fd_vs_fm_2x_nfe"] = r["fd"] / fm.get(twice, nan) if twice[1] is not None else nan
    table = format_table(results, ["row", "variant", "nfe", "fd", "precision", "recall", "fd_vs_fm", "fd_vs_fm_2x_nfe"])
    head = (
        f"hardware: {env.hardware}; runs {args.work}<row>; {args.n} samples per cell (noise seed {args.seed}); "
        f"classifier test accuracy {env.clf.info.test_accuracy:.4f}; reference: test split"
    )
    report(head, table, results, args.out)


if __name__ == "__main__":
    main()
