"""`kflow eval likelihood RUN`: bits per dimension of held-out data under a run, and what each band costs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from .args import nonneg_int, positive_float, positive_int

EXACT_MAX_DIM = 4096  # the exact trace takes one vector-Jacobian product per dimension per evaluation


def run_likelihood(args) -> None:
    from ..data import load_dataset, load_images
    from ..data.datasets import SPLIT_DATASETS
    from ..metrics.evaluate import format_table
    from ..runs import load_run
    from ..sampling.likelihood import bits_by_band
    from ..utils.atomic import atomic_write_json
    from ..utils.devices import pick_device

    device = pick_device(args.device)
    run = load_run(args.run, device=device)
    T = run.path.transform
    if args.divergence == "exact" and T.dim > EXACT_MAX_DIM:
        raise ValueError(
            f"--divergence exact needs {T.dim} vector-Jacobian products per evaluation for this run "
            f"(more than {EXACT_MAX_DIM}); use --divergence hutchinson (--probes N)"
        )
    d = run.cfg.data
    if args.data and run.latent:  # latents of held-out images, written by `kflow data encode`
        x = load_dataset("latents", root=args.data, limit=args.n).x
        what = args.data
    elif args.data:
        x = load_images(args.data, tuple(T.shape), limit=args.n)
        what = args.data
    elif d.name in SPLIT_DATASETS:
        x = load_dataset(d.name, args.split, d.root, d.image_size, d.channels, args.n).x
        what = f"{d.name}:{args.split}"
    else:
        raise ValueError(
            f"the run trained on data.name={d.name}, which has no held-out split; give --data "
            f"({'a latents folder from kflow data encode' if run.latent else 'an .npz or image folder'})"
        )
    if tuple(x.shape[1:]) != tuple(T.shape):
        raise ValueError(f"{what} holds samples of shape {tuple(x.shape[1:])}; the run takes {tuple(T.shape)}")

    def progress(done, total):
        if args.progress:
            print(f"\r{done}/{total} images", end="", file=sys.stderr, flush=True)

    out = bits_by_band(
        run.model,
        run.path,
        x,
        scale=run.scale,
        quantized=not run.latent,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
        progress=progress,
        **{name: getattr(args, name) for name in ("divergence", "probes", "solver", "steps", "rtol", "atol")},
    )
    if args.progress:
        print(file=sys.stderr)
    if not torch.isfinite(out.total).all():
        raise ValueError("the log-likelihood came out NaN/Inf (a diverging flow); try a tighter --rtol or rk4")
    n = len(out.total)
    se = float(out.total.std() / math.sqrt(n)) if n > 1 else float("nan")
    sizes = T.band_sizes().tolist()
    rows = [
        {
            "band": b,
            "dims": sizes[b],
            out.unit: float(out.band[:, b].mean()),
            f"share of total ({out.unit})": float(out.share[:, b].mean()),
            "share %": 100 * float(out.share[:, b].mean() / out.total.mean()),
        }
        for b in range(T.num_bands)
    ]
    print(format_table(rows, list(rows[0])))
    method = f"{args.divergence}" + (f", {args.probes} probe(s)" if args.divergence == "hutchinson" else "")
    print(
        f"{args.run} on {what}: {float(out.total.mean()):.4f} +- {se:.4f} {out.unit} over {n} images "
        f"({args.solver}, trace {method}, null class; {out.seconds / n:.2f} s per image)"
    )
    result = {
        "run": str(args.run),
        "data": what,
        "n": n,
        "unit": out.unit,
        "total": float(out.total.mean()),
        "standard_error": se,
        "bands": rows,
        "solver": args.solver,
        "divergence": args.divergence,
        "probes": args.probes,
        "seconds_per_image": out.seconds / n,
    }
    if args.json:
        atomic_write_json(args.json, result)
    if args.figure:
        figure(rows, out.unit, f"{Path(args.run).name}: {result['total']:.3f} {out.unit}", args.figure)


def figure(rows: list[dict], unit: str, title: str, out: str) -> None:
    """Bits per dimension of each band's coefficients, and each band's share of the total."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    b = [r["band"] for r in rows]
    axes[0].bar(b, [r[unit] for r in rows])
    axes[0].set(xlabel="band (coarse to fine)", ylabel=f"{unit} of the band's coefficients")
    axes[1].bar(b, [r[f"share of total ({unit})"] for r in rows], color="tab:orange")
    axes[1].set(xlabel="band (coarse to fine)", ylabel=f"share of the total ({unit})")
    for ax in axes:
        ax.set_xticks(b)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def add_parser(esub) -> None:
    from ..config import CHOICES

    p = esub.add_parser("likelihood", help="bits per dimension of held-out data under a run, band by band")
    p.add_argument("run", help="run folder or checkpoint")
    p.add_argument("--split", default="test", help="split of the run's own dataset (digits, fashion_mnist)")
    p.add_argument(
        "--data", default=None, help="instead: an .npz, an image folder or NAME:SPLIT (latent runs: a latents folder)"
    )
    p.add_argument("--n", type=positive_int, default=1000, help="images evaluated (the first n)")
    p.add_argument("--divergence", default="hutchinson", choices=("exact", "hutchinson"), help="the trace")
    p.add_argument("--probes", type=positive_int, default=1, help="Hutchinson probes per image (Rademacher)")
    p.add_argument("--solver", default="dopri5", choices=CHOICES["sample.solver"], help="ODE solver")
    p.add_argument("--steps", type=positive_int, default=100, help="steps of a fixed-step solver")
    p.add_argument("--rtol", type=positive_float, default=1e-5, help="dopri5 relative tolerance")
    p.add_argument("--atol", type=positive_float, default=1e-5, help="dopri5 absolute tolerance")
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per integration")
    p.add_argument("--seed", type=nonneg_int, default=0, help="dequantization and probe seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--json", default=None, help="also write the result here")
    p.add_argument("--figure", default=None, help="bits by band (PNG)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress line")
