"""`kflow data encode`: a dataset -> scaled VAE latents (safetensors shards + manifest).
`kflow data molecules`: 17-molecule crystal clusters (safetensors per split + manifest)."""

from __future__ import annotations

from .args import nonneg_int, positive_float, positive_int


def run_encode(args) -> None:
    from ..data import load_dataset
    from ..data.latents import encode_dataset

    data = load_dataset(args.dataset, args.split, args.root, args.image_size, args.channels, args.limit)
    source = dict(name=args.dataset, split=args.split, root=args.root, image_size=args.image_size, limit=args.limit)
    info = encode_dataset(
        data,
        args.vae,
        args.out,
        store=args.store,
        scale=args.scale,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        seed=args.seed,
        device=args.device,
        source=source,
    )
    m = info.manifest
    print(
        f"{m['n']} images -> latents {tuple(m['latent_shape'])} (scale {m['scale']:g}, store {m['store']}) in "
        f"{info.num_shards} shard(s) under {info.folder}; train with data.name=latents data.root={info.folder}"
    )


def run_molecules(args) -> None:
    from ..molecules.cluster_files import save_clusters
    from ..molecules.clusters import build_clusters
    from ..molecules.crystals import read_crystals

    if args.cifs:
        from ..molecules.crystals import read_cif_folder

        crystals, source = read_cif_folder(args.cifs, max_sites=args.max_cif_sites), f"CIF files of {args.cifs}"
    else:
        crystals, source = read_crystals(), "pyxtal database/test.db + database/mech.db"
    splits, skipped = build_clusters(crystals, centres=args.centres, rotations=args.rotations, seed=args.seed)
    if not any(splits.values()):
        from ..utils.errors import DataError

        reasons = "; ".join(f"{k}: {v}" for k, v in list(skipped.items())[:3])
        raise DataError(f"no cluster could be cut from the {len(crystals)} crystal(s) ({reasons})")
    empty = [name for name, clusters in splits.items() if not clusters]
    if empty:  # splits go by molecule: a handful of crystals can leave a split with none
        print(
            f"warning: the {', '.join(empty)} split(s) got no clusters ({len(crystals)} crystal(s), split by "
            "molecule); add crystals of more molecules for a usable set"
        )
    info = dict(
        source=source,
        crystals=len(crystals),
        centres=args.centres,
        rotations=args.rotations,
        seed=args.seed,
        skipped=skipped,
    )

    from ..utils.atomic import remove_temp_files
    from ..utils.lock import FolderLock

    with FolderLock(args.out, "--out folder"):
        remove_temp_files(args.out)  # left by a killed build; nobody else writes here now
        save_clusters(args.out, splits, info)
    print(f"{len(crystals)} crystals, {len(skipped)} skipped ({', '.join(sorted(set(skipped.values())))})")
    for split, clusters in splits.items():
        print(
            f"{split}: {len(clusters)} clusters of 17 molecules from {len({c.name for c in clusters})} crystals, "
            f"{len({c.smiles for c in clusters})} distinct molecules"
        )
    print(f"written to {args.out}")


def add_parser(sub) -> None:
    d = sub.add_parser("data", help="prepare datasets: encode images to VAE latents, cut molecular clusters")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    e = dsub.add_parser(
        "encode",
        help="encode a dataset once with a local diffusers AutoencoderKL (resumable; torchrun "
        "splits the shards over GPUs)",
    )
    e.add_argument("--vae", required=True, help="local AutoencoderKL folder (config.json + *.safetensors)")
    e.add_argument("--dataset", default="fashion_mnist", help="digits | fashion_mnist | folder | npz")
    e.add_argument("--root", default=None, help="image folder or .npz for folder / npz")
    e.add_argument("--split", default="train", help="dataset split to encode")
    e.add_argument("--image-size", type=positive_int, default=None, help="pad / resize images to this size first")
    e.add_argument("--channels", type=positive_int, default=3, help="folder datasets: 1 (grey) or 3 (RGB)")
    e.add_argument("--limit", type=positive_int, default=None, help="encode only the first N images")
    e.add_argument(
        "--store",
        default="mean_std",
        choices=["mean_std", "mean", "sample"],
        help="mean_std: scaled mean and std; mean; sample: one scaled draw (seeded)",
    )
    e.add_argument(
        "--scale", type=positive_float, default=None, help="latent scale (default: the VAE's scaling_factor)"
    )
    e.add_argument("--batch-size", type=positive_int, default=64, help="images per VAE forward pass")
    e.add_argument("--shard-size", type=positive_int, default=4096, help="latents per shard (the unit of resumption)")
    e.add_argument("--seed", type=nonneg_int, default=0, help="seed of the latent draws (--store sample)")
    e.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    e.add_argument("--out", required=True, help="latent folder to write (or resume)")
    e.set_defaults(func=run_encode)
    m = dsub.add_parser("molecules", help="17-molecule clusters cut from the crystals pyxtal ships (split by molecule)")
    m.add_argument("--centres", type=positive_int, default=4, help="centre molecules per crystal")
    m.add_argument("--rotations", type=positive_int, default=4, help="random global rotations per cluster")
    m.add_argument("--seed", type=nonneg_int, default=0, help="seed of the start poses and the split")
    m.add_argument(
        "--cifs", default=None, help="build from this folder of .cif files (e.g. COD entries) instead of pyxtal's"
    )
    m.add_argument(
        "--max-cif-sites",
        type=positive_int,
        default=5000,
        help="skip CIF files listing more atom sites (ASE's reader is quadratic: 5000 take about a minute)",
    )
    m.add_argument("--out", default="data/molecules", help="folder for the cluster files")
    m.set_defaults(func=run_molecules)
