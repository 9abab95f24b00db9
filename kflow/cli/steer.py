"""`kflow edit` and `kflow restore`: real images in (.npz, image files, folders, NAME:SPLIT),
PNG grids and .npz out."""

from __future__ import annotations

from pathlib import Path

import torch


def _save(out: Path, grid_rows: list[torch.Tensor], arrays: dict, what: str) -> None:
    from ..sampling.to_files import to_uint8
    from ..utils.atomic import atomic_write_npz
    from ..viz.images import save_image_grid

    if any(not torch.isfinite(r).all() for r in grid_rows):
        raise ValueError(f"{what} produced NaN/Inf values; nothing written (try more steps)")
    n = len(grid_rows[0])
    images = torch.stack(grid_rows, 1).reshape(-1, *grid_rows[0].shape[1:])  # one row per input
    png = save_image_grid(images, out / f"{what}.png", nrow=n, scale=3)
    arrays = {k: to_uint8(v) if isinstance(v, torch.Tensor) else v for k, v in arrays.items()}
    atomic_write_npz(out / f"{what}.npz", arrays)
    print(f"{n} images -> {png} and {out / f'{what}.npz'}")


def run_edit(args) -> None:
    from ..data import load_images
    from ..recipe import load_run, pick_device
    from ..steering import edit_bands, psnr
    from .args import parse_bands, parse_labels

    device = pick_device(args.device)
    run = load_run(args.checkpoint, device=device)
    run.require_unscaled("band editing")
    shape = tuple(run.path.transform.shape)
    x = load_images(args.images, shape, limit=args.n).to(device)
    donor = load_images(args.donor, shape, limit=len(x)).to(device) if args.donor else None
    if donor is not None and len(donor) != len(x):
        raise ValueError(f"--donor gave {len(donor)} images for {len(x)} inputs; give as many")
    y = parse_labels(args.label, len(x), run.num_classes)
    keep = parse_bands(args.keep_bands, "--keep-bands")
    out = edit_bands(
        run.model,
        run.path,
        x,
        keep_bands=keep,
        seed=args.seed,
        steps=args.steps,
        solver=args.solver,
        y=None if y is None else y.to(device),
        donor=donor,
    )
    rec = psnr(out.reconstruction.clamp(-1, 1), x).mean().item()
    print(f"backward-forward reconstruction ({args.solver}, {args.steps} steps): PSNR {rec:.2f} dB")
    rows = [x, out.reconstruction] + ([donor] if donor is not None else []) + [out.x]
    _save(
        Path(args.out),
        [r.cpu() for r in rows],
        dict(x=out.x.cpu(), inputs=x.cpu(), x_0=out.x_0.cpu().numpy(), reconstruction=out.reconstruction.cpu()),
        "edit",
    )


def run_restore(args) -> None:
    from ..data import load_images
    from ..recipe import load_run, pick_device
    from ..steering import baseline, make_degradation, psnr, restore

    device = pick_device(args.device)
    run = load_run(args.checkpoint, device=device)
    run.require_unscaled("restoration")
    shape = tuple(run.path.transform.shape)
    A = make_degradation(args.task, shape, factor=args.factor, sigma=args.sigma, sigma_y=args.noise)
    if args.degraded:  # the inputs are observations: low-resolution images (SR) or blurred ones
        if args.task == "inpaint":
            raise ValueError("--degraded does not apply to inpainting; give clean images (the centre is masked)")
        y, clean = load_images(args.images, A.out_shape, limit=args.n, exact_size=True), None
    else:
        clean = load_images(args.images, shape, limit=args.n)
        y = A(clean, seed=args.seed)
    out = restore(run.model, run.path, y, A, steps=args.steps, seed=args.seed)
    base = baseline(y, A)
    if clean is not None:
        print(
            f"{args.task}: PSNR restored {psnr(out.x.clamp(-1, 1), clean).mean():.2f} dB, "
            f"baseline {psnr(base, clean).mean():.2f} dB (NFE {out.nfe}, {len(y)} images)"
        )
    rows = ([clean] if clean is not None else []) + [base, out.x]  # rows: clean, classical baseline, restored
    _save(Path(args.out), rows, dict(x=out.x, observation=y.numpy(), baseline=base), "restore")
