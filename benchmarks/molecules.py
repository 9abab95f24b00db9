"""Molecular assembly on clusters cut from pyxtal's crystals: rigid flow matching (AssembleFlow-
style) vs K-Flow over graph-frequency bands, same network, budget, seeds and batches, side by side.

    python benchmarks/molecules.py --steps 600 --batch 8 --hidden 32 --layers 2 --mol-layers 3 --samples 4 \
        --out docs/results/molecules_cpu     # CPU, ~30 min

Data: `kflow data molecules` (built here into --data when missing). Metrics on the test split
(molecules never seen in training): PM-atom and PM-center (best of --samples), collision and
separation rates (kflow/molecules/metrics.py), plus the same for the start clusters as a floor.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from toolkit import report  # markdown + JSON as every benchmark writes them

from kflow.metrics.evaluate import format_table
from kflow.molecules.cluster_files import load_clusters, save_clusters
from kflow.molecules.clusters import build_clusters, pair, random_rotations
from kflow.molecules.crystals import read_crystals
from kflow.molecules.flow import make_batch
from kflow.molecules.metrics import score_assemblies
from kflow.molecules.model import AssemblyNetConfig
from kflow.molecules.rigid import RigidState
from kflow.molecules.train import AssemblyConfig, evaluate_assembly, train_assembly


def reference_rows(test, samples: int, seed: int) -> list[dict]:
    """The trivial references: start clusters unchanged; the start shrunk to the crystal cluster's
    size; each molecule at its true centre with a random orientation (best of `samples` draws,
    like the models)."""
    rng = np.random.default_rng(seed)
    start, shrunk, centres = [], [], []
    for c in test:
        b = make_batch([c])
        start.append(score_assemblies(b.atoms(torch.zeros_like(b.u1)), b.target))
        # the start cluster shrunk about its centre to the crystal cluster's RMS radius, start
        # orientations kept: what a model gets for learning only the cluster's size
        t1 = b.t0 + b.u1[..., :3]
        rms = lambda t: (t - t.mean(1, keepdim=True)).pow(2).sum(-1).mean(-1).sqrt()
        mid = b.t0.mean(1, keepdim=True)
        t_s = mid + (b.t0 - mid) * (rms(t1) / rms(b.t0))[:, None, None]
        u_s = torch.cat([t_s - b.t0, torch.zeros_like(t_s)], -1)
        shrunk.append(score_assemblies(b.atoms(u_s), b.target))
        rot = lambda: torch.from_numpy(random_rotations(t1.shape[1], rng)).to(t1.dtype)[None]  # (1, M, 3, 3)
        draws = [RigidState(t1, rot()).atoms(b.local) for _ in range(samples)]
        centres.append(score_assemblies(torch.stack(draws), b.target))

    def row(name, scores):
        mean = lambda f: sum(getattr(s, f) for s in scores) / len(scores)
        return {
            "flow": name,
            "pm_atom": mean("pm_atom"),
            "pm_center": mean("pm_center"),
            "collision": mean("collision_rate"),
            "separation": mean("separation_rate"),
            "train_s": 0.0,
        }

    return [
        row("start (no model)", start),
        row("start shrunk to the true size", shrunk),
        row("true centres, random rotations", centres),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/molecules")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--mol-layers", type=int, default=1, help="EGNN layers over the molecule centres")
    ap.add_argument("--bands", default="3", help="K-Flow graph band counts, comma-separated: a row each")
    ap.add_argument("--flows", default="rigid_fm,kflow", help="comma-separated: rigid_fm, kflow")
    ap.add_argument("--pairing", default="nearest", help="nearest (slots matched to start molecules) or given")
    ap.add_argument("--work", default="runs/molecules", help="finished rows are cached here and reused")
    ap.add_argument("--samples", type=int, default=5, help="samples per test cluster (best of)")
    ap.add_argument("--nfe", type=int, default=20)
    ap.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test clusters")
    ap.add_argument("--max-atoms", type=int, default=30, help="keep molecules of at most this many atoms (CPU budget)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--references-only", action="store_true", help="print the trivial reference rows and stop")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if not (Path(args.data) / "manifest.json").exists():
        splits, skipped = build_clusters(read_crystals(), seed=args.seed)
        save_clusters(args.data, splits, {"seed": args.seed, "skipped": skipped, "centres": 4, "rotations": 4})
    small = lambda cs: [c for c in cs if c.numbers.shape[1] <= args.max_atoms]
    train, test = small(load_clusters(args.data, "train")), small(load_clusters(args.data, "test"))[: args.test_limit]
    net_cfg = AssemblyNetConfig(hidden=args.hidden, layers=args.layers, mol_layers=args.mol_layers)
    rows = reference_rows(pair(test, args.pairing), args.samples, args.seed)
    for r in rows:
        print(json.dumps(r), flush=True)
    if args.references_only:
        return
    bands = [int(b) for b in args.bands.split(",")]
    flows = args.flows.split(",")
    if not set(flows) <= {"rigid_fm", "kflow"}:
        raise SystemExit(f"--flows {args.flows!r}: use rigid_fm and/or kflow, comma-separated")
    runs = [("rigid_fm", 1)] * ("rigid_fm" in flows) + [("kflow", b) for b in bands] * ("kflow" in flows)
    for flow, B in runs:
        cfg = AssemblyConfig(
            flow=flow,
            num_bands=B,
            steps=args.steps,
            batch_size=args.batch,
            seed=args.seed,
            pairing=args.pairing,
            net=net_cfg,
        )
        # one cached result per (flow, bands, budget, network, evaluation): reruns skip finished rows
        key = (
            f"{flow}-b{B}-s{args.steps}-bs{args.batch}-h{args.hidden}-l{args.layers}-m{args.mol_layers}-seed{args.seed}"
            f"-nfe{args.nfe}-n{args.samples}-a{args.max_atoms}-t{len(test)}-{args.pairing}"
        )
        cache = Path(args.work) / f"{key}.json"
        if cache.exists():
            rows.append(json.loads(cache.read_text()))
        else:
            t = time.time()
            net = train_assembly(train, cfg).net
            train_s = time.time() - t
            s = evaluate_assembly(net, test, cfg, samples=args.samples, steps=args.nfe, seed=args.seed)
            name = flow if flow == "rigid_fm" else f"kflow, {B} bands"
            rows.append(
                {
                    "flow": name,
                    "pm_atom": s.pm_atom,
                    "pm_center": s.pm_center,
                    "collision": s.collision_rate,
                    "separation": s.separation_rate,
                    "train_s": train_s,
                }
            )
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(rows[-1]))
        print(json.dumps(rows[-1]), flush=True)
    head = (
        f"{len(train)} train / {len(test)} test clusters of 17 molecules (split by SMILES); network "
        f"{asdict(net_cfg)}; {args.steps} steps x batch {args.batch}, seed {args.seed}; Euler NFE {args.nfe}, "
        f"best of {args.samples} samples; pairing {args.pairing}; molecules of <= {args.max_atoms} atoms; "
        "PM in Angstrom"
    )
    table = format_table(rows, ["flow", "pm_atom", "pm_center", "collision", "separation", "train_s"])
    report(head, table, rows, args.out)


if __name__ == "__main__":
    main()
