"""`kflow train` (a run from a YAML config plus key=value overrides) and `kflow demo`."""

from __future__ import annotations

from .args import add_train_arguments, overwrite_requested, positive_float


def run_train(args) -> None:
    from ..config import load_config
    from ..training import train

    cfg = load_config(args.config, args.overrides)
    overwrite = overwrite_requested(args, cfg.out_dir)
    result = train(cfg, resume=args.resume, overwrite=overwrite)
    print(
        f"trained to step {result.step}, loss {result.loss:.4f}; checkpoint {result.checkpoint}; "
        f"samples in {result.out_dir / 'samples'}"
    )


def run_demo(args) -> None:
    from ..demo import run_demo

    run_demo(minutes=args.minutes, out=args.out, config=args.config)


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train from a YAML config plus key=value overrides")
    add_train_arguments(t, "see configs/")
    t.set_defaults(func=run_train)


def add_demo_parser(sub) -> None:
    d = sub.add_parser("demo", help="train a wavelet K-Flow on Fashion-MNIST for a few minutes, write pictures")
    d.add_argument("--minutes", type=positive_float, default=7.0, help="training wall time")
    d.add_argument("--config", default=None, help="config (default configs/demo.yaml)")
    d.add_argument("--out", default="outputs/demo", help="folder for the run and its pictures")
    d.set_defaults(func=run_demo)
