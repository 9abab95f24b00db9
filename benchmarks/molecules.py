"""Molecular assembly on clusters cut from pyxtal's crystals: the trivial references, rigid FM
(AssembleFlow-style) and K-Flow over graph-frequency bands, side by side: same network, budget,
batches and seeds; three seeds per learned row (mean and spread); test split reported, the weights
of each run chosen on the validation split.

Rows are configs under configs/molecules/ plus overrides (ROWS); every (row, seed) trains into its
own resumable run folder under --work, so a stopped benchmark continues where it was.

    python benchmarks/molecules.py --rows rigid_fm,kflow_hard,kflow --seeds 0,1,2 --out docs/results/molecules_cpu

Data: `kflow data molecules` (built here into --data when missing). Metrics on the test split
(molecules never seen in training): PM-atom and PM-center (best of --samples), collision and
separation rates (kflow/molecules/metrics.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from toolkit import ROOT, report  # markdown + JSON as every benchmark writes them

from kflow.cli.molecules import load_assembly_config
from kflow.metrics.evaluate import format_table
from kflow.molecules.cluster_files import save_clusters
from kflow.molecules.clusters import build_clusters, pair
from kflow.molecules.crystals import read_crystals
from kflow.molecules.flow import make_batch
from kflow.molecules.metrics import score_assemblies
from kflow.molecules.relax import NO_RELAXATION, Relaxation, relax
from kflow.molecules.rigid import RigidState, overlay_starts, overlays, random_rotations
from kflow.molecules.train import evaluate_assembly, train_assembly
from kflow.utils.atomic import atomic_write_json
from kflow.utils.devices import pick_device

CONFIGS = ROOT / "configs" / "molecules"
# a row -> (config file, overrides)
ROWS = {
    "rigid_fm": ("rigid_fm.yaml", []),
    "kflow": ("kflow.yaml", []),  # 3 graph bands, overlap 0.5
    "kflow_hard": ("kflow.yaml", ["overlap=0.0"]),  # the paper's hard band order
    "kflow_2bands": ("kflow.yaml", ["num_bands=2"]),
    "kflow_logit": ("kflow.yaml", ["train.k_density=logit_normal"]),
    "kflow_window": ("kflow.yaml", ["k_embedding=window"]),
    "kflow_own": ("kflow.yaml", ["rotations=own"]),  # translations by band, rotations over all of k
    # the crystal turned onto the start before pairing (kflow.molecules.clusters.pair_aligned)
    "rigid_fm_aligned": ("rigid_fm.yaml", ["pairing=aligned"]),
    "kflow_hard_aligned": ("kflow.yaml", ["overlap=0.0", "pairing=aligned"]),
    # the clash penalty of the predicted final atoms in the loss (steric_weight, pairs under 1.5 A)
    "rigid_fm_aligned_steric": ("rigid_fm.yaml", ["pairing=aligned", "steric_weight=1.0"]),
    "kflow_hard_aligned_steric": ("kflow.yaml", ["overlap=0.0", "pairing=aligned", "steric_weight=1.0"]),
    "rigid_fm_velocity": ("rigid_fm.yaml", ["target=velocity", "rotation_weight=1.0"]),
    "rigid_fm_egnn": ("rigid_fm.yaml", ["target=velocity", "rotation_weight=1.0", "net.kind=egnn", "net.hidden=32"]),
    # the first models (before the frame network): EGNN of width 32 predicting velocities, constant lr
    # 1e-3, no EMA, no validation, 600 steps; the hard graph path for K-Flow
    **{
        f"{flow}_egnn_v1": (
            f"{flow}.yaml",
            [
                "net.kind=egnn",
                "net.hidden=32",
                "net.layers=2",
                "net.mol_layers=3",
                "target=velocity",
                "rotation_weight=1.0",
                "train.lr=0.001",
                "train.lr_schedule=constant",
                "train.warmup=0",
                "train.ema_decay=0.0",
                "train.weight_decay=0.01",
                "eval_every=0",
                "train.steps=600",
                "overlap=0.0",
            ],
        )
        for flow in ("rigid_fm", "kflow")
    },
}


def oracle_placements(b, turns: int = 64) -> list[tuple[float, torch.Tensor]]:
    """The true crystal cluster turned about its centre and put at the start's centre, each start
    molecule sent to a slot, for every distinct overlay of the crystal's centres onto the start's
    (kflow.molecules.rigid.overlays: Hungarian assignment and Kabsch rotation, alternated from
    many starting orientations): [(squared displacement, atoms (1, M, A, 3))], cheapest first.
    What a model that knew the crystal exactly could do: the start says nothing about the
    crystal's orientation, so the best it can do is take the one whose slots lie nearest the
    start's molecules (the aligned pairing's target)."""
    t1, R1, s = (b.t0 + b.u1[..., :3])[0], b.state(b.u1).R[0], b.t0[0]
    p, q = (s - s.mean(0)).numpy(), (t1 - t1.mean(0)).numpy()
    found = {}
    for col, R, cost in overlays(p, q, overlay_starts(p, q, turns)):
        if cost < found.get(tuple(col), (np.inf,))[0]:
            found[tuple(col)] = (cost, R)
    out = []
    for col, (cost, R) in sorted(found.items(), key=lambda f: f[1][0]):
        Q, col = torch.from_numpy(R).to(t1.dtype), torch.tensor(col)  # start molecule i -> slot col[i]
        atoms = RigidState(((t1 - t1.mean(0)) @ Q.T + s.mean(0))[col][None], (Q @ R1[col])[None]).atoms(b.local)
        out.append((cost, atoms))
    return out


def reference_rows(
    test, samples: int, seed: int, matched: bool = False, relaxation: Relaxation = NO_RELAXATION
) -> list[dict]:
    """The trivial references: start clusters unchanged; the start shrunk to the crystal cluster's
    size; each molecule at its true centre with a random orientation (best of `samples` draws,
    like the models). And two oracle rows that bound what any model can score on this task: the
    true crystal placed at the orientation that fits the start best (oracle_placements), once and
    best of the `samples` best-fitting orientations. With a relaxation (--relax-steps), also the
    shrunk start relaxed: what the relaxation does without a model."""
    rng = np.random.default_rng(seed)
    start, shrunk, shrunk_relaxed, centres, fit, fit_best = [], [], [], [], [], []
    for c in test:
        b = make_batch([c], dtype=torch.float64)
        placed = oracle_placements(b)
        fit.append(score_assemblies(placed[0][1], b.target, matched=matched))
        fit_best.append(
            score_assemblies(torch.stack([p[1] for p in placed[:samples]]), b.target, matched=matched)
        )  # (S, 1, M, A, 3)
        start.append(score_assemblies(b.atoms(torch.zeros_like(b.u1)), b.target, matched=matched))
        # the start cluster shrunk about its centre to the crystal cluster's RMS radius, start
        # orientations kept: what a model gets for learning only the cluster's size
        t1 = b.t0 + b.u1[..., :3]
        rms = lambda t: (t - t.mean(1, keepdim=True)).pow(2).sum(-1).mean(-1).sqrt()
        mid = b.t0.mean(1, keepdim=True)
        t_s = mid + (b.t0 - mid) * (rms(t1) / rms(b.t0))[:, None, None]
        u_s = torch.cat([t_s - b.t0, torch.zeros_like(t_s)], -1)
        shrunk.append(score_assemblies(b.atoms(u_s), b.target, matched=matched))
        if relaxation.steps:
            shrunk_relaxed.append(score_assemblies(b.atoms(relax(b, u_s, relaxation)), b.target, matched=matched))
        rot = lambda: torch.from_numpy(random_rotations(t1.shape[1], rng)).to(t1.dtype)[None]  # (1, M, 3, 3)
        draws = [RigidState(t1, rot()).atoms(b.local) for _ in range(samples)]
        centres.append(score_assemblies(torch.stack(draws), b.target, matched=matched))

    def row(name, scores):
        mean = lambda f: sum(getattr(s, f) for s in scores) / len(scores)
        return {
            "flow": name,
            "pm_atom": mean("pm_atom"),
            "pm_center": mean("pm_center"),
            "collision": mean("collision_rate"),
            "separation": mean("separation_rate"),
            "train_s": 0.0,
            **({"pm_center_matched": mean("pm_center_matched")} if matched else {}),
        }

    return [
        row("start (no model)", start),
        row("start shrunk to the true size", shrunk),
        *([row("start shrunk, relaxed", shrunk_relaxed)] if relaxation.steps else []),
        row("true centres, random rotations", centres),
        row("oracle: true crystal, orientation fit to the start", fit),
        row(f"oracle: true crystal, best of {samples} fitted orientations", fit_best),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="rigid_fm,kflow_hard,kflow", help=f"comma-separated: {', '.join(ROWS)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default="data/molecules")
    ap.add_argument("--work", default="runs/molecules", help="run folders, resumable; finished rows are reused")
    ap.add_argument("--samples", type=int, default=5, help="samples per test cluster (best of)")
    ap.add_argument("--nfe", type=int, default=20)
    ap.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test clusters")
    ap.add_argument("--out", default=None)
    ap.add_argument("--references-only", action="store_true", help="print the trivial reference rows and stop")
    ap.add_argument("--matched", action="store_true", help="also PM-center with the copies matched (slower)")
    ap.add_argument("--relax-steps", type=int, default=0, help="clash relaxation of every sample (0: off)")
    ap.add_argument("--relax-distance", type=float, default=2.0, help="the relaxation's contact distance (A)")
    ap.add_argument("--gather", action="store_true", help="tabulate the finished runs only, train none")
    ap.add_argument("--no-references", action="store_true", help="train and test the rows only (parallel workers)")
    ap.add_argument("overrides", nargs="*", help="key=value for every learned row (e.g. train.steps=500)")
    args = ap.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    if not (Path(args.data) / "manifest.json").exists():
        splits, skipped = build_clusters(read_crystals(), seed=0)
        save_clusters(args.data, splits, {"seed": 0, "skipped": skipped, "centres": 4, "rotations": 4})
    seeds = [int(v) for v in args.seeds.split(",")]
    configs = {}
    for row in args.rows.split(","):
        if row not in ROWS:
            raise SystemExit(f"--rows: unknown row {row!r}; use {', '.join(ROWS)}")
        file, extra = ROWS[row]
        configs[row] = [
            load_assembly_config(CONFIGS / file, [f"data={args.data}", *extra, *args.overrides, f"train.seed={s}"])
            for s in seeds
        ]
    first = next(iter(configs.values()))[0]
    train, val, test = first.clusters("train"), first.clusters("val"), first.clusters("test")[: args.test_limit]
    # shared by every row's process (one file per pairing: the references depend on it)
    relaxation = Relaxation(args.relax_steps, args.relax_distance)
    # cached results name what they were scored with
    relaxed = f"-relax{args.relax_steps}d{args.relax_distance:g}" if args.relax_steps else ""
    scored = f"n{args.samples}-t{len(test)}{'-matched' * args.matched}{relaxed}"
    refs = Path(args.work) / f"references-{first.pairing}-{scored}.json"
    if refs.exists():
        rows = json.loads(refs.read_text())
    elif args.no_references:
        rows = []
    else:
        rows = reference_rows(pair(test, first.pairing), args.samples, 0, args.matched, relaxation)
        refs.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(refs, rows)
    for r in rows:
        print(json.dumps(r), flush=True)
    if args.references_only:
        return
    for row, cfgs in configs.items():
        per_seed = []
        for cfg in cfgs:
            folder = Path(args.work) / f"{row}-seed{cfg.train.seed}"
            cache = folder / f"test-nfe{args.nfe}-{scored}.json"
            if cache.exists():
                r = json.loads(cache.read_text())
            elif args.gather:
                print(f"{row} seed {cfg.train.seed}: no result in {folder}, left out", flush=True)
                continue
            else:
                tr = train_assembly(train, cfg, out=folder, val=val if cfg.eval_every else None)
                s = evaluate_assembly(
                    tr.net, test, cfg, args.samples, args.nfe, seed=0, matched=args.matched, relaxation=relaxation
                )
                chosen = [p for p in tr.curve if p["step"] == tr.best_step]
                r = dict(
                    val_pm_atom=chosen[0]["pm_atom"] if chosen else float("nan"),
                    val_pm_center=chosen[0]["pm_center"] if chosen else float("nan"),
                    pm_atom=s.pm_atom,
                    pm_center=s.pm_center,
                    collision=s.collision_rate,
                    separation=s.separation_rate,
                    best_step=tr.best_step,
                    train_s=tr.train_s,
                    hardware=hardware(cfg.train.device),
                    **({"pm_center_matched": s.pm_center_matched} if args.matched else {}),
                )
                atomic_write_json(cache, r)
            print(json.dumps(dict(row=row, seed=cfg.train.seed, **r)), flush=True)
            per_seed.append(r)
        if per_seed:
            rows.append(summarise(row, per_seed))
    ran_on = sorted({r["hardware"] for row in rows for r in row.get("seeds", []) if "hardware" in r})
    head = (
        f"{len(train)} train / {len(val)} validation / {len(test)} test clusters of 17 molecules (split by SMILES), "
        f"molecules of <= {first.max_atoms} atoms; seeds {args.seeds}: mean +- spread (max - min over seeds); "
        f"configs/molecules/ + {' '.join(args.overrides) or 'no overrides'}; Euler NFE {args.nfe}, best of "
        f"{args.samples} samples; PM in Angstrom; hardware: {', '.join(ran_on) or hardware(first.device)}"
        + (f"; relaxed: {args.relax_steps} steps, contact {args.relax_distance:g} A" if args.relax_steps else "")
    )
    cols = ["flow", "pm_atom", "pm_center", *(["pm_center_matched"] * args.matched), "collision", "separation"]
    cols += ["val_pm_atom", "val_pm_center", "best_step"]
    table = format_table(rows, [*cols, "train_s"])
    report(head, table, rows, args.out)


def hardware(device: str) -> str:
    dev = pick_device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} CPU threads"


def summarise(row: str, runs: list[dict]) -> dict:
    """Mean +- spread over seeds as text cells, the raw values alongside."""
    out = {"flow": row, "seeds": runs}
    keys = ("pm_atom", "pm_center", "pm_center_matched", "collision", "separation", "best_step", "train_s")
    keys = (*keys, "val_pm_atom", "val_pm_center")
    for key in keys:
        vals = [r.get(key, float("nan")) for r in runs]
        mean = statistics.fmean(vals)
        out[key] = f"{mean:.3f} +- {max(vals) - min(vals):.3f}" if len(vals) > 1 else mean
        out[f"{key}_mean"] = mean
    return out


if __name__ == "__main__":
    main()
