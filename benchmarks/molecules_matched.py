"""Finished assembly runs and the reference rows scored once more on the test split, with the
copies matched as well: PM-center under the task's pairing (which generated copy stands for which
crystal slot, fixed by the nearest start) next to PM-center with the pairing that fits best
(kflow/molecules/metrics.py pm_center_matched, as packing-similarity tools overlay clusters).
The first asks a model to guess the pairing, which the start does not determine; the second asks
only for a crystal-like arrangement of the centres.

    python benchmarks/molecules_matched.py --work runs/molecules --rows rigid_fm,kflow_hard --seeds 0 \\
        --out docs/results/molecules_matched

Runs are the run folders benchmarks/molecules.py (or molecules_gpu.sh) trained under --work;
folders without finished weights are left out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from molecules import ROWS, reference_rows, summarise  # this folder's molecule benchmark
from toolkit import report

from kflow.metrics.evaluate import format_table
from kflow.molecules.clusters import pair
from kflow.molecules.runs import load_assembly_run
from kflow.molecules.train import evaluate_assembly


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="runs/molecules", help="the run folders (benchmarks/molecules.py --work)")
    ap.add_argument("--rows", default="rigid_fm,kflow_hard,kflow")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--data", default="data/molecules")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--nfe", type=int, default=20)
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows, head_cfg = [], None
    for row in args.rows.split(","):
        if row not in ROWS:
            raise SystemExit(f"--rows: unknown row {row!r}; use {', '.join(ROWS)}")
        runs = []
        for seed in args.seeds.split(","):
            folder = Path(args.work) / f"{row}-seed{seed}"
            if not (folder / "model.safetensors").exists():
                print(f"{folder}: no finished run, left out", flush=True)
                continue
            cache = folder / f"test-matched-nfe{args.nfe}-n{args.samples}-t{args.test_limit or 'all'}.json"
            if cache.exists():
                runs.append(json.loads(cache.read_text()))
                continue
            net, cfg = load_assembly_run(folder)
            cfg.data, cfg.train.device = args.data, "cpu"
            head_cfg = head_cfg or cfg
            test = cfg.clusters("test")[: args.test_limit]
            s = evaluate_assembly(net, test, cfg, samples=args.samples, steps=args.nfe, seed=0, matched=True)
            r = dict(
                seed=int(seed),
                pm_atom=s.pm_atom,
                pm_center=s.pm_center,
                pm_center_matched=s.pm_center_matched,
                collision=s.collision_rate,
                separation=s.separation_rate,
            )
            cache.write_text(json.dumps(r))
            print(json.dumps(dict(row=row, **r)), flush=True)
            runs.append(r)
        if runs:
            rows.append(dict(summarise(row, runs), seeds=",".join(str(r["seed"]) for r in runs)))
    if head_cfg is None:
        from molecules import CONFIGS

        from kflow.cli.molecules import load_assembly_config

        head_cfg = load_assembly_config(CONFIGS / "rigid_fm.yaml", [f"data={args.data}"])
    test = head_cfg.clusters("test")[: args.test_limit]
    refs = reference_rows(pair(test, head_cfg.pairing), args.samples, 0, matched=True)
    head = (
        f"{len(test)} test clusters, best of {args.samples} samples, Euler NFE {args.nfe}; run folders under "
        f"{args.work}; PM in Angstrom; pm_center_matched: the copies matched by the best rigid overlay"
    )
    cols = ["flow", "seeds", "pm_atom", "pm_center", "pm_center_matched", "collision", "separation"]
    report(head, format_table(refs + rows, cols), refs + rows, args.out)


if __name__ == "__main__":
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    main()
