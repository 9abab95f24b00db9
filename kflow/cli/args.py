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
