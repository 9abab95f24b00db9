"""`kflow inspect`: per-band spectra of a dataset, spectral evolution along runs, band strips."""

from __future__ import annotations

from ..utils.errors import BandCountError, DataError
from .args import nonneg_int, positive_int

DEFAULT_NUM_BANDS = 3


def run_inspect(args) -> None:
    from .. import inspection as ins
    from ..utils.devices import pick_device

    if args.what == "data":
        try:
            report = ins.inspect_data(
                args.dataset,
                args.out,
                root=args.root,
                image_size=args.image_size,
                limit=args.limit,
                num_bands=args.num_bands,
            )
        except BandCountError as e:
            given = " (the default)" if args.num_bands == DEFAULT_NUM_BANDS else ""
            raise DataError(
                f"--num-bands {args.num_bands}{given} is too many: {e}; pass --num-bands {e.limit} "
                "(or a larger --image-size)"
            ) from None
        print(report)
        return
    if not args.checkpoints:
        raise ValueError(f"kflow inspect {args.what} needs a checkpoint or run folder (e.g. runs/fmnist_wavelet3)")
    device = pick_device(args.device)
    if args.what == "path":
        names = args.names.split(",") if args.names else None
        print(
            ins.inspect_path(
                args.checkpoints,
                args.out,
                names=names,
                n=args.n or 128,
                steps=args.steps or 100,
                seed=args.seed,
                device=device,
            )
        )
    else:
        if len(args.checkpoints) != 1:
            raise ValueError("kflow inspect strip takes one checkpoint")
        print(
            ins.inspect_strip(
                args.checkpoints[0],
                args.out,
                n=args.n or 6,
                steps=args.steps or 50,
                seed=args.seed,
                what=args.strip,
                device=device,
            )
        )


def add_parser(sub) -> None:
    i = sub.add_parser(
        "inspect",
        help="data: per-band spectra of a dataset; path: spectral evolution and projection "
        "ratio of checkpoints; strip: band-by-band pictures (PNG + JSON)",
    )
    i.add_argument("what", choices=["data", "path", "strip"], help="which analysis (see above)")
    i.add_argument("checkpoints", nargs="*", help="path/strip: checkpoints or run folders (path: FM and K-Flow runs)")
    i.add_argument("--dataset", default="fashion_mnist", help="data")
    i.add_argument("--root", default=None, help="data: dataset folder")
    i.add_argument("--image-size", type=positive_int, default=32, help="data")
    i.add_argument("--limit", type=positive_int, default=10000, help="data: images used")
    i.add_argument("--num-bands", type=positive_int, default=DEFAULT_NUM_BANDS, help="data: bands per decomposition")
    i.add_argument("--names", default=None, help="path: comma-separated run names (default: folder names)")
    i.add_argument("--n", type=positive_int, default=None, help="path/strip: samples (default 128 / 6)")
    i.add_argument("--steps", type=positive_int, default=None, help="path/strip: Euler steps (default 100 / 50)")
    i.add_argument("--seed", type=nonneg_int, default=0, help="path/strip: noise seed")
    i.add_argument("--strip", default="all", choices=["all", "states", "generated", "bands"], help="strip: columns")
    i.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    i.add_argument("--out", default="outputs/inspect", help="folder for the PNG and JSON files")
    i.set_defaults(func=run_inspect)
