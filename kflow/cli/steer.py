"""`kflow edit` and `kflow restore`: real images in (.npz, image files, folders, NAME:SPLIT),
PNG grids and .npz out."""

from __future__ import annotations

from pathlib import Path

import torch

from .args import nonneg_float, nonneg_int, positive_float, positive_int


def _save(out: Path, grid_rows: list[torch.Tensor], arrays: dict, what: str) -> None:
    import numpy as np

    from ..data.image_data import to_uint8
    from ..utils.atomic import write_together
    from ..viz.images import grid_image

    if any(not torch.isfinite(r).all() for r in grid_rows):
        raise ValueError(f"{what} produced NaN/Inf values; nothing written (try more steps)")
    n = len(grid_rows[0])
    images = torch.stack(grid_rows, 1).reshape(-1, *grid_rows[0].shape[1:])  # one row per input
    im = grid_image(images, n, 3)
    arrays = {k: to_uint8(v) if isinstance(v, torch.Tensor) else v for k, v in arrays.items()}

    def npz(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    png, data = out / f"{what}.png", out / f"{what}.npz"
    write_together({png: lambda tmp: im.save(tmp, format="PNG"), data: npz})  # one job's pair, never two jobs'
    print(f"{n} images -> {png} and {data}")


def run_edit(args) -> None:
    from ..utils.lock import FolderLock

    with FolderLock(Path(args.out), "--out folder"):  # one job's edit.png and edit.npz, never two jobs'
        _edit(args)


def run_restore(args) -> None:
    from ..utils.lock import FolderLock

    with FolderLock(Path(args.out), "--out folder"):
        _restore(args)


def _edit(args) -> None:
    from ..data import load_images
    from ..metrics.psnr import psnr
    from ..runs import load_run
    from ..steering import edit_bands
    from ..steering.guidance import class_labels
    from ..utils.devices import pick_device
    from .args import parse_bands

    device = pick_device(args.device)
    run = load_run(args.checkpoint, device=device)
    run.require_unscaled("band editing")
    shape = tuple(run.path.transform.shape)
    x = load_images(args.images, shape, limit=args.n).to(device)
    donor = load_images(args.donor, shape, limit=len(x)).to(device) if args.donor else None
    if donor is not None and len(donor) != len(x):
        raise ValueError(f"--donor gave {len(donor)} images for {len(x)} inputs; give as many")
    try:
        y = class_labels(args.label, len(x), run.num_classes)
    except ValueError as e:
        raise ValueError(f"--label {args.label}: {e}") from None
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
        dict(
            x=out.x.cpu(),
            inputs=x.cpu(),
            x_0=out.x_0.cpu().numpy(),
            x_0_edited=out.x_0_edited.cpu().numpy(),
            reconstruction=out.reconstruction.cpu(),
        ),
        "edit",
    )


def _restore(args) -> None:
    from ..data import load_images
    from ..metrics.psnr import psnr
    from ..runs import load_run
    from ..steering import baseline, make_degradation, restore
    from ..utils.devices import pick_device

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


def add_parsers(sub) -> None:
    from ..config import CHOICES
    from ..steering.degradations import TASKS

    ed = sub.add_parser(
        "edit", help="band editing of real images: recover their noise, redraw or swap bands, regenerate"
    )
    ed.add_argument("checkpoint", help="ckpt-*.safetensors or a run folder")
    ed.add_argument("images", help=".npz, image file, image folder, or NAME:SPLIT (e.g. fashion_mnist:test)")
    ed.add_argument("--keep-bands", default="0", help="bands whose recovered noise is kept (default 0, the coarsest)")
    ed.add_argument("--donor", default=None, help="images whose noise fills the other bands (a band swap)")
    ed.add_argument("--n", type=positive_int, default=8, help="at most this many images")
    ed.add_argument("--label", default=None, help="class for conditional models (index or 'all')")
    ed.add_argument("--steps", type=positive_int, default=50, help="solver steps each way (inversion and regeneration)")
    fixed_step = [s for s in CHOICES["sample.solver"] if s != "dopri5"]  # inversion needs the same grid both ways
    ed.add_argument("--solver", default="rk4", choices=fixed_step, help="fixed-step ODE solver")
    ed.add_argument("--seed", type=nonneg_int, default=0, help="seed of the redrawn noise")
    ed.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ed.add_argument("--out", default="outputs/edit", help="folder for edit.png and edit.npz")
    ed.set_defaults(func=run_edit)

    rs = sub.add_parser("restore", help="training-free restoration: super-resolution, deblurring, inpainting")
    rs.add_argument("checkpoint", help="ckpt-*.safetensors or a run folder")
    rs.add_argument("images", help="clean images to degrade (.npz, image file, folder, NAME:SPLIT)")
    rs.add_argument("--task", default="sr_box", choices=TASKS, help="degradation")
    rs.add_argument("--factor", type=positive_int, default=2, help="super-resolution factor")
    rs.add_argument("--sigma", type=positive_float, default=1.0, help="blur std in pixels")
    rs.add_argument("--noise", type=nonneg_float, default=0.0, help="measurement noise std (images in [-1, 1])")
    rs.add_argument("--degraded", action="store_true", help="the images are observations already (SR: low-res; blur)")
    rs.add_argument("--n", type=positive_int, default=8, help="at most this many images")
    rs.add_argument("--steps", type=positive_int, default=50, help="sampling steps")
    rs.add_argument("--seed", type=nonneg_int, default=0, help="noise seed")
    rs.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    rs.add_argument("--out", default="outputs/restore", help="folder for restore.png and restore.npz")
    rs.set_defaults(func=run_restore)
