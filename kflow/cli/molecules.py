"""`kflow molecules train | sample | score`: molecular assembly as a first-class task.

train: a run folder (out_dir=) from a YAML config (configs/molecules/) plus key=value overrides,
in `kflow train`'s form: resumable (--resume), refused when the folder holds another run unless
--overwrite OUT_DIR names it. sample: generated clusters of a split as
extended XYZ + CIF next to their crystal clusters, and a picture. score: PM-atom, PM-center
(--matched: also with the copies matched), collision and separation on a split (best of
--samples), printed as one JSON line.
"""

from __future__ import annotations

import json
from pathlib import Path

from .args import add_train_arguments, nonneg_int, overwrite_requested, positive_float, positive_int


def load_assembly_config(path, overrides):
    from ..molecules.config import AssemblyConfig
    from ..utils.typed_config import apply_overrides, read_config_file

    return AssemblyConfig.from_dict(apply_overrides(read_config_file(path), list(overrides)))


def empty_split(cfg, split: str) -> str:
    """Why a split has no clusters: none in the set at all, or all over the atom limit."""
    from ..molecules.cluster_files import load_clusters

    total = len(load_clusters(cfg.data, split))
    if total == 0:
        return f"{cfg.data} has no {split} clusters at all (too few crystals for a {split} split); build a larger set"
    return (
        f"{cfg.data} has {total} {split} clusters, none with molecules of <= {cfg.max_atoms} atoms; raise max_atoms "
        "(0: no limit)"
    )


def run_train(args) -> None:
    from ..molecules.train import train_assembly

    if args.config is None:
        raise ValueError("give a config: kflow molecules train configs/molecules/kflow.yaml [key=value ...]")
    cfg = load_assembly_config(args.config, args.overrides)
    overwrite = overwrite_requested(args, cfg.out_dir)
    train, val = cfg.clusters("train"), cfg.clusters("val") if cfg.eval_every else None
    if not train:
        raise ValueError(empty_split(cfg, "train"))
    r = train_assembly(train, cfg, out=cfg.out_dir, val=val, resume=args.resume, overwrite=overwrite)
    chosen = f"; weights of step {r.best_step} (best validation)" if r.curve else ""
    print(f"trained {r.step} steps in {r.train_s:.0f} s{chosen}; run in {cfg.out_dir}")


def _split(cfg, args):
    clusters = cfg.clusters(args.split)
    if not clusters:
        raise ValueError(empty_split(cfg, args.split))
    return clusters[: args.limit] if args.limit else clusters


def run_sample(args) -> None:
    import torch

    from ..molecules.export import picture, write_cluster
    from ..molecules.flow import make_batch
    from ..molecules.runs import load_assembly_run
    from ..molecules.train import generate
    from ..utils.atomic import atomic_write_json
    from ..utils.lock import FolderLock

    net, cfg = load_assembly_run(args.run)
    clusters = _split(cfg, args)
    relaxation = _relaxation(args)
    out = Path(args.out)
    settings = _sample_settings(args)
    with FolderLock(out, "--out folder"):
        _claim_sample_folder(out, settings)
        shown, i = [], 0
        for group, samples in generate(net, clusters, cfg, args.samples, args.nfe, args.seed, relaxation):
            b = make_batch(group, dtype=torch.float64)
            for j, c in enumerate(group):
                write_cluster(out / f"{i:04d}_crystal", c.numbers, b.target[j].numpy(), c.name)
                for s, u in enumerate(samples):
                    gen = b.atoms(u.double())[j].numpy()
                    write_cluster(out / f"{i:04d}_generated_{s}", c.numbers, gen, c.name)
                    if s == 0 and len(shown) < 4:
                        shown.append((c.name, c.numbers, gen, b.target[j].numpy()))
                i += 1
        picture(shown, out / "clusters.png")
        atomic_write_json(out / SAMPLES_MANIFEST, dict(settings, complete=True, clusters=i))
    print(f"{i} clusters x {args.samples} samples written to {out} (.xyz, .cif; crystal alongside; clusters.png)")


SAMPLES_MANIFEST = "samples.json"


def _sample_settings(args) -> dict:
    return dict(
        run=str(Path(args.run).resolve()),
        split=args.split,
        limit=args.limit,
        samples=args.samples,
        nfe=args.nfe,
        seed=args.seed,
        relax_steps=args.relax_steps,
        relax_distance=args.relax_distance,
    )


def _relaxation(args):
    from ..molecules.relax import Relaxation

    return Relaxation(steps=args.relax_steps, distance=args.relax_distance)


def _claim_sample_folder(out: Path, settings: dict) -> None:
    """The --out folder holds one sampling job's files: its settings go in samples.json before the
    first file, so a rerun of the same job (say, after a kill) rewrites the same files, and a
    different job, or a folder of other files, is refused instead of mixed in."""
    from ..utils.atomic import atomic_write_json, manifest_difference, remove_temp_files, temp_files

    mf = out / SAMPLES_MANIFEST
    diff = manifest_difference(mf, settings)
    if diff:
        raise ValueError(
            f"--out {out} holds samples of another job (differs in {', '.join(diff)}); "
            "use another --out or delete that folder"
        )
    stale = set(temp_files(out))
    others = [p.name for p in sorted(out.iterdir()) if p.name != SAMPLES_MANIFEST and p not in stale]
    if others and not mf.exists():
        raise ValueError(
            f"--out {out} is not empty and holds no {SAMPLES_MANIFEST} (e.g. {others[0]}); "
            "use a new or empty folder for samples"
        )
    remove_temp_files(out)  # left by a job killed while writing a file (the folder is ours: locked)
    atomic_write_json(mf, dict(settings, complete=False))


def run_score(args) -> None:
    from dataclasses import asdict

    from ..molecules.runs import load_assembly_run
    from ..molecules.train import evaluate_assembly

    net, cfg = load_assembly_run(args.run)
    clusters = _split(cfg, args)
    s = evaluate_assembly(
        net,
        clusters,
        cfg,
        samples=args.samples,
        steps=args.nfe,
        seed=args.seed,
        matched=args.matched,
        relaxation=_relaxation(args),
    )
    print(json.dumps(dict(run=str(args.run), split=args.split, nfe=args.nfe, **asdict(s))))


def add_parser(sub) -> None:
    m = sub.add_parser("molecules", help="molecular assembly: train, sample (XYZ + CIF) and score flows")
    msub = m.add_subparsers(dest="mol_cmd", required=True)
    t = msub.add_parser("train", help="train from a YAML config (configs/molecules/) plus key=value overrides")
    add_train_arguments(t, "e.g. configs/molecules/kflow.yaml; the run folder is out_dir=")
    t.set_defaults(func=run_train)
    for name, fn, helptext, samples in [
        ("sample", run_sample, "generate clusters of a split as XYZ + CIF files and a picture", 1),
        ("score", run_score, "PM-atom, PM-center, collision and separation on a split", 5),
    ]:
        p = msub.add_parser(name, help=helptext)
        p.add_argument("run", help="a finished run folder (kflow molecules train)")
        p.add_argument("--split", default="test", choices=["train", "val", "test"], help="which clusters")
        p.add_argument("--limit", type=positive_int, default=None, help="only the first N clusters")
        p.add_argument("--samples", type=positive_int, default=samples, help="samples per cluster")
        p.add_argument("--nfe", type=positive_int, default=20, help="Euler steps")
        p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the start noise (sample s uses seed + s)")
        p.add_argument(
            "--relax-steps",
            type=nonneg_int,
            default=0,
            help="clash relaxation after sampling: Adam steps on the molecules' rigid poses (0: off)",
        )
        p.add_argument(
            "--relax-distance",
            type=positive_float,
            default=2.0,
            help="Angstrom: atoms of two molecules closer than this push apart (with --relax-steps)",
        )
        if name == "sample":
            p.add_argument("--out", required=True, help="folder for the files")
        else:
            p.add_argument("--matched", action="store_true", help="also PM-center with the copies matched")
        p.set_defaults(func=fn)
