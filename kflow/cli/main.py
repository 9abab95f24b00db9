"""The `kflow` command: train, sample, inspect, demo. Errors are one line (exit 2) unless --debug."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from .args import nonneg_float, nonneg_int, parse_bands, parse_labels, positive_float, positive_int, unit_float


def _train(args) -> None:
    from ..config import load_config
    from ..training import train

    cfg = load_config(args.config, args.overrides)
    overwrite = args.overwrite is not None
    if overwrite and Path(args.overwrite).resolve() != Path(cfg.out_dir).resolve():
        raise ValueError(
            f"--overwrite {args.overwrite} does not name this run's out_dir ({cfg.out_dir}); nothing deleted"
        )
    if overwrite and args.resume:
        raise ValueError("--resume and --overwrite contradict each other; choose one")
    result = train(cfg, resume=args.resume, overwrite=overwrite)
    print(
        f"trained to step {result.step}, loss {result.loss:.4f}; checkpoint {result.checkpoint}; "
        f"samples in {result.out_dir / 'samples'}"
    )


def _sample(args) -> None:
    import numpy as np
    import torch

    from ..recipe import load_run, pick_device, run_sampling
    from ..sampling.to_files import sample_to_folder
    from ..viz.images import save_image_grid

    device = pick_device(args.device)
    run = load_run(args.checkpoint, device=device)
    y = parse_labels(args.label, args.n, run.num_classes)
    alloc = args.step_allocation
    if alloc not in ("length", "equal"):
        try:
            alloc = [float(w) for w in alloc.split(",")]
            if not all(math.isfinite(w) and w > 0 for w in alloc):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"--step-allocation {args.step_allocation!r}: use length, equal or comma-separated positive weights"
            ) from None
    if not 0.0 <= args.keep_class_until <= 1.0:
        raise ValueError(
            f"--keep-class-until {args.keep_class_until} must lie in [0, 1] (the fraction of k with the class)"
        )
    if (args.guidance != 1.0 or args.keep_class_until < 1.0) and y is None:
        raise ValueError("--guidance / --keep-class-until need --label (a class or 'all') on a class-conditional model")
    rs = run_sampling(
        run.model, run.cfg, y, args.guidance, args.keep_class_until, device, vae=args.vae, scale=run.scale
    )
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
    npz = sample_to_folder(
        run.model,
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
        velocity=rs.velocity,
        decode=rs.decode,
    )
    with np.load(npz, allow_pickle=False) as f:
        x, nfe = f["x"][: args.grid_size], int(f["nfe"])
    grid = save_image_grid(torch.from_numpy(x).float() / 127.5 - 1, Path(args.out) / "samples.png")
    print(f"{args.n} samples ({args.solver}, NFE {nfe}, seed {args.seed}) -> {grid} and {npz}")


def _inspect(args) -> None:
    from .. import inspection as ins
    from ..recipe import pick_device

    if args.what == "data":
        print(
            ins.inspect_data(
                args.dataset,
                args.out,
                root=args.root,
                image_size=args.image_size,
                limit=args.limit,
                num_bands=args.num_bands,
            )
        )
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


def _eval(args) -> None:
    from .eval import run_eval

    run_eval(args)


def _edit(args) -> None:
    from .steer import run_edit

    run_edit(args)


def _restore(args) -> None:
    from .steer import run_restore

    run_restore(args)


def _demo(args) -> None:
    from ..demo import run_demo

    run_demo(minutes=args.minutes, out=args.out, config=args.config)


DEMO_RUN = Path("outputs/demo/run")


def _studio(args) -> None:
    from ..recipe import pick_device
    from ..utils.errors import ConfigError

    run = args.run
    if run is None:
        if not (DEMO_RUN / "checkpoints").is_dir():
            raise ConfigError(f"no run given and no demo run in {DEMO_RUN}; run `make demo` first or give a run folder")
        run = DEMO_RUN
    if not Path(run).exists():
        raise ConfigError(f"run {run} does not exist; give a run folder or checkpoint written by `kflow train`")
    try:
        from .. import studio  # noqa: F401  - needs Pillow: the studio extra
    except ImportError as e:
        raise ConfigError(f"the studio needs its extra ({e.name} is missing): pip install 'kflow[studio]'") from None
    from ..studio.server import serve

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    serve(run, host=args.host, port=args.port, device=pick_device(args.device))


class UsageError(Exception):
    """A command line argparse refuses (unknown option, a value of the wrong kind)."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line through main(), not usage + exit from inside argparse
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from ..config import CHOICES, SampleConfig
    from ..steering.restore import TASKS

    sc_defaults = SampleConfig()  # `kflow sample` defaults are the config's
    p = Parser(prog="kflow", description="K-Flow: flow matching band by band")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train from a YAML config plus key=value overrides")
    t.add_argument("config", nargs="?", help="YAML config (see configs/)")
    t.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=200 transform.name=fourier")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in out_dir")
    t.add_argument(
        "--overwrite",
        metavar="OUT_DIR",
        default=None,
        help="delete the run already in out_dir first; give out_dir again, so that no typo deletes a run",
    )
    t.set_defaults(func=_train)

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
        default="length",
        help="band grid: steps per band by 'length' (of the band's k interval), 'equal', or weights like 1,2,4",
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
    s.set_defaults(func=_sample)

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
    i.add_argument("--num-bands", type=positive_int, default=3, help="data: bands per decomposition")
    i.add_argument("--names", default=None, help="path: comma-separated run names (default: folder names)")
    i.add_argument("--n", type=positive_int, default=None, help="path/strip: samples (default 128 / 6)")
    i.add_argument("--steps", type=positive_int, default=None, help="path/strip: Euler steps (default 100 / 50)")
    i.add_argument("--seed", type=nonneg_int, default=0, help="path/strip: noise seed")
    i.add_argument("--strip", default="all", choices=["all", "states", "generated", "bands"], help="strip: columns")
    i.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    i.add_argument("--out", default="outputs/inspect", help="folder for the PNG and JSON files")
    i.set_defaults(func=_inspect)

    e = sub.add_parser("eval", help="train the feature classifier, or score samples (FD, precision, recall)")
    esub = e.add_subparsers(dest="eval_cmd", required=True)
    tc = esub.add_parser("train-classifier", help="train the dataset classifier whose features give FD")
    tc.add_argument("--dataset", default="fashion_mnist", help="dataset name (see data.name)")
    tc.add_argument("--root", default=None, help="dataset folder (folder/npz datasets)")
    tc.add_argument("--image-size", type=positive_int, default=32, help="images are padded/resized to this")
    tc.add_argument("--epochs", type=positive_int, default=3, help="training epochs")
    tc.add_argument("--out", default="classifiers/fashion_mnist.safetensors", help="classifier file (safetensors)")
    sc = esub.add_parser("score", help="FD / precision / recall of a checkpoint's samples or of an .npz")
    sc.add_argument("source", help="checkpoint, run folder, or .npz of uint8 samples (key x)")
    sc.add_argument("--classifier", default=None, help="from `kflow eval train-classifier`: FD, precision, recall")
    sc.add_argument(
        "--inception", default=None, help="local Inception-v3 FID weights (safetensors, pytorch-fid layout): adds FID"
    )
    sc.add_argument("--dataset", default=None, help="reference dataset (default: the classifier's)")
    sc.add_argument(
        "--image-size", type=positive_int, default=None, help="reference image size (default: the samples')"
    )
    sc.add_argument("--split", default="test", help="reference split")
    sc.add_argument("--n", type=positive_int, default=5000, help="samples drawn from a checkpoint")
    sc.add_argument("--solver", default=sc_defaults.solver, choices=CHOICES["sample.solver"], help="ODE solver")
    sc.add_argument("--steps", type=positive_int, default=sc_defaults.steps, help="solver steps")
    sc.add_argument("--grid", default=sc_defaults.grid, choices=CHOICES["sample.grid"], help="k grid")
    sc.add_argument("--seed", type=nonneg_int, default=0, help="noise seed")
    sc.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    sc.add_argument("--json", default=None, help="also write the result here")
    ci = esub.add_parser("convert-inception", help="pytorch-fid .pth weights -> safetensors (loaded weights-only)")
    ci.add_argument("src", help="pytorch-fid weights (.pth)")
    ci.add_argument("dst", help="output .safetensors")
    e.set_defaults(func=_eval)

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
    ed.set_defaults(func=_edit)

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
    rs.set_defaults(func=_restore)

    from .data import add_parser as add_data_parser

    add_data_parser(sub)

    st = sub.add_parser("studio", help="a local web page to steer a run's generation band by band")
    st.add_argument("run", nargs="?", default=None, help=f"run folder or checkpoint (default: the demo's, {DEMO_RUN})")
    st.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    st.add_argument("--port", type=nonneg_int, default=8765, help="port (0 picks a free one)")
    st.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    st.add_argument("--threads", type=nonneg_int, default=0, help="CPU threads for torch (0: torch's default)")
    st.set_defaults(func=_studio)

    d = sub.add_parser("demo", help="train a wavelet K-Flow on Fashion-MNIST for a few minutes, write pictures")
    d.add_argument("--minutes", type=positive_float, default=7.0, help="training wall time")
    d.add_argument("--config", default=None, help="config (default configs/demo.yaml)")
    d.add_argument("--out", default="outputs/demo", help="folder for the run and its pictures")
    d.set_defaults(func=_demo)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.cmd == "train" and all("=" in a and not a.startswith("-") for a in extra):
            args.overrides += extra  # key=value overrides after an option (`--resume train.steps=9`)
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as e:
        print(f"kflow: error: {e}", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("kflow: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for users; --debug for the traceback
        if args.debug:
            raise
        from ..utils.errors import KFlowError

        known = (KFlowError, ValueError, OSError, ImportError)
        if isinstance(e, known):
            print(f"kflow: error: {e}", file=sys.stderr)
        else:  # a bug or an input we did not foresee: still one line, the traceback behind --debug
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(
                f"kflow: error: unexpected {type(e).__name__}: {first} (rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
