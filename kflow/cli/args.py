"""Parsing of the options several commands share (band lists, numbers); labels: steering.class_labels."""

from __future__ import annotations


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
