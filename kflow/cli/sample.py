"""`kflow sample`: images from a run, with guidance, condition dropping and noise splitting."""

from __future__ import annotations

import time
from pathlib import Path

from .args import nonneg_float, nonneg_int, parse_bands, positive_int, unit_float


def run_sample(args) -> None:
    import numpy as np

    from ..data.image_data import from_uint8
    from ..models.flops import FlopTally
    from ..runs import ToImage, load_run
    from ..sampling.grids import parse_step_allocation
    from ..sampling.to_files import sample_to_folder
    from ..steering.guidance import class_labels, guided
    from ..utils.devices import pick_device
    from ..viz.images import save_image_grid

    device = pick_device(args.device)
    run = load_run(args.checkpoint, device=device)
    try:
        y = class_labels(args.label, args.n, run.num_classes)
    except ValueError as e:
        raise ValueError(f"--label {args.label}: {e}") from None
    if args.step_allocation is None:  # the run's own setting
        alloc = run.cfg.sample.step_allocation
        args.step_allocation = alloc if isinstance(alloc, str) else ",".join(f"{w:g}" for w in alloc)
    try:
        alloc = parse_step_allocation(args.step_allocation)
    except ValueError as e:
        raise ValueError(f"--step-allocation: {e}") from None
    model = FlopTally(run.model, run.path)  # what the samples cost, printed at the end
    try:
        velocity = guided(model, y, args.guidance, args.keep_class_until)
    except ValueError as e:
        raise ValueError(f"{e}: need --label (a class or 'all')") from None
    x_0 = None
    if args.fix_bands or args.vary_bands:
        from ..steering import split_noise

        x_0 = split_noise(
            run.path.transform,
            args.n,
            fix_bands=parse_bands(args.fix_bands, "--fix-bands"),
            vary_bands=parse_bands(args.vary_bands, "--vary-bands"),
            seed=args.seed,
            shared_seed=args.shared_seed,
        )
    settings = dict(
        checkpoint=str(Path(args.checkpoint).resolve()),
        step=run.step,
        solver=args.solver,
        steps=args.steps,
        grid=args.grid,
        project=args.project,
        label=args.label,
        guidance=args.guidance,
        keep_class_until=args.keep_class_until,
        fix_bands=args.fix_bands,
        vary_bands=args.vary_bands,
        shared_seed=args.shared_seed,
        step_allocation=args.step_allocation,
    )
    t0, before = time.time(), len(list((Path(args.out) / "parts").glob("part-*.npz")))
    npz = sample_to_folder(
        model,
        run.path,
        args.n,
        args.out,
        settings,
        x_0=x_0,
        y=y,
        seed=args.seed,
        batch_size=args.batch_size,
        solver=args.solver,
        steps=args.steps,
        grid=args.grid,
        project=args.project,
        device=device,
        step_allocation=alloc,
        velocity_for=velocity,
        decode=run.to_image if args.vae is None else ToImage(run.cfg, run.scale, args.vae, device),
    )
    with np.load(npz, allow_pickle=False) as f:
        x, nfe = f["x"][: args.grid_size], int(f["nfe"])
    grid = save_image_grid(from_uint8(x), Path(args.out) / "samples.png")
    print(f"{args.n} samples ({args.solver}, NFE {nfe}, seed {args.seed}) -> {grid} and {npz}")
    new = args.n - min(args.n, before * args.batch_size)  # images sampled now (finished parts are reused)
    if new:
        print(
            f"spent {model.flops / 1e9:.2f} GFLOPs in {time.time() - t0:.1f} s: "
            f"{model.flops / 1e9 / new:.3f} GFLOPs per image"
        )


def add_parser(sub) -> None:
    from ..config import CHOICES, SampleConfig

    sc_defaults = SampleConfig()  # `kflow sample` defaults are the config's
    s = sub.add_parser("sample", help="generate images from a checkpoint")
    s.add_argument("checkpoint", help="ckpt-*.safetensors or a run folder")
    s.add_argument("--n", type=positive_int, default=64, help="number of samples (default 64)")
    s.add_argument("--solver", default=sc_defaults.solver, choices=CHOICES["sample.solver"], help="ODE solver")
    s.add_argument(
        "--steps", type=positive_int, default=sc_defaults.steps, help="solver steps (dopri5: adaptive, ignored)"
    )
    s.add_argument(
        "--grid", default=sc_defaults.grid, choices=CHOICES["sample.grid"], help="k grid: band-aware or uniform"
    )
    s.add_argument(
        "--step-allocation",
        default=None,
        help="band grid: steps per band by 'length' (of the band's k interval), 'equal', or weights like 2,1,1 "
        "(default: the run's sample.step_allocation)",
    )
    s.add_argument("--project", action="store_true", help="keep only the active band of the velocity")
    s.add_argument("--label", default=None, help="class index, or 'all' for the classes in turn (class-conditional)")
    s.add_argument(
        "--guidance", type=nonneg_float, default=1.0, help="classifier-free guidance scale (1 = conditional)"
    )
    s.add_argument(
        "--keep-class-until",
        type=unit_float,
        default=1.0,
        help="condition dropping: use the class only for k below this (the paper: 0.3)",
    )
    s.add_argument("--fix-bands", default=None, help="noise splitting: bands (e.g. 0) whose noise all samples share")
    s.add_argument("--vary-bands", default=None, help="noise splitting: bands drawn per sample (the others shared)")
    s.add_argument("--shared-seed", type=nonneg_int, default=None, help="seed of the shared noise (default --seed)")
    s.add_argument("--seed", type=nonneg_int, default=0, help="seed of the noise x_0 (the same seed, the same samples)")
    s.add_argument("--batch-size", type=positive_int, default=500, help="samples integrated at once (memory)")
    s.add_argument("--grid-size", type=positive_int, default=64, help="images in the PNG grid")
    s.add_argument(
        "--vae", default=None, help="latent models: VAE folder (default: the one the latents were encoded with)"
    )
    s.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    s.add_argument("--out", default="outputs/samples", help="folder for samples.npz, samples.png and parts/")
    s.set_defaults(func=run_sample)
