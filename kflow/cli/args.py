"""Parsing of the options several commands share (labels, band lists)."""

from __future__ import annotations


def parse_labels(label, n: int, num_classes: int):
    """--label: a class index, 'all' (classes in turn), or None (unconditional / null class)."""
    import torch

    if label is None:
        return None
    if num_classes == 0:
        raise ValueError("--label needs a class-conditional model; this one is unconditional (num_classes=0)")
    if label == "all":
        return torch.arange(n) % num_classes
    try:
        c = int(label)
    except ValueError:
        raise ValueError(f"--label {label!r}: give a class index or 'all'") from None
    if not 0 <= c < num_classes:
        raise ValueError(f"--label {c} does not fit this model: classes are 0..{num_classes - 1}")
    return torch.full((n,), c, dtype=torch.long)


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
