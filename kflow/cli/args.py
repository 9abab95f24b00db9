"""Parsing of the options several commands share (band lists, numbers); labels: steering.class_labels."""

from __future__ import annotations


def overwrite_requested(args, out_dir) -> bool:
    """`--overwrite OUT_DIR` of the train commands: it must name the run's own folder (so no typo
    deletes a run) and cannot go with --resume."""
    from pathlib import Path

    if args.overwrite is None:
        return False
    if Path(args.overwrite).resolve() != Path(out_dir).resolve():
        raise ValueError(f"--overwrite {args.overwrite} does not name this run's out_dir ({out_dir}); nothing deleted")
    if args.resume:
        raise ValueError("--resume and --overwrite contradict each other; choose one")
    return True


def add_train_arguments(t, what: str) -> None:
    """The arguments every train command takes, in one form: CONFIG, key=value overrides, --resume,
    --overwrite OUT_DIR."""
    t.add_argument("config", nargs="?", help=f"YAML config ({what})")
    t.add_argument("overrides", nargs="*", help="key=value, e.g. train.steps=200 out_dir=runs/mine")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in out_dir")
    t.add_argument(
        "--overwrite",
        metavar="OUT_DIR",
        default=None,
        help="delete the run already in out_dir first; give out_dir again, so that no typo deletes a run",
    )


def parse_bands(text, option: str):
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: give comma-separated band indices like 0,1") from None


# argparse types: a bad value is refused where it enters, in argparse's one line naming the option
def _number(text: str, kind, ok, what: str):
    import argparse
    import math

    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def nonneg_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a number > 0")


def nonneg_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def unit_float(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
